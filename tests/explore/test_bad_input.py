"""Bad input to the public entry points gets clear, typed errors."""

import pytest

import dmabuf
from dmabuf.errors import InvalidArgument, NotInRuntime, UsageError


def body():
    pass


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"preemption_bound": -1}, "preemption_bound must be >= 0"),
        ({"preemption_bound": 1.5}, "preemption_bound must be an int"),
        ({"max_executions": 0}, "max_executions must be >= 1"),
        ({"time_budget": -2}, "time_budget must be a positive number"),
        ({"strategy": "bfs"}, "unknown strategy 'bfs'"),
        ({"max_steps": 0}, "max_steps must be >= 1"),
    ],
)
def test_explore_bad_arguments(kwargs, words):
    with pytest.raises(InvalidArgument, match=words):
        dmabuf.explore(body, **kwargs)


def test_explore_non_callable():
    with pytest.raises(InvalidArgument, match="zero-argument callable"):
        dmabuf.explore(42)  # type: ignore[arg-type]


def test_spawn_outside_runtime():
    with pytest.raises(NotInRuntime, match="inside a body run by"):
        dmabuf.spawn(body)


def test_choose_outside_runtime_and_bad_n():
    with pytest.raises(NotInRuntime):
        dmabuf.choose(2)

    def b():
        dmabuf.choose(0)

    res = dmabuf.explore(b, strategy="dfs")
    assert res.failure is not None and res.failure.kind == "exception"
    assert isinstance(res.failure.exception, InvalidArgument)


def test_nested_explore_is_rejected():
    def outer():
        dmabuf.explore(body, strategy="dfs")

    res = dmabuf.explore(outer, strategy="dfs")
    assert res.failure is not None and isinstance(res.failure.exception, UsageError)
    assert "already active" in str(res.failure.exception)


def test_spawn_non_callable_inside_runtime():
    def b():
        dmabuf.spawn(3)

    res = dmabuf.explore(b, strategy="dfs")
    assert isinstance(res.failure.exception, InvalidArgument)
