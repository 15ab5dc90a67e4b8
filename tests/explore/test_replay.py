"""Replay strings: versioned, labelled, reproducing; divergence is reported precisely."""

import pytest

import dmabuf
from dmabuf.errors import InvalidArgument, ReplayFormatError
from dmabuf.explore.schedule import decode, encode
from dmabuf.kernel import Mutex


def abba_body():
    a = Mutex(name="A")
    b = Mutex(name="B")

    def t1():
        with a, b:
            pass

    def t2():
        with b, a:
            pass

    x = dmabuf.spawn(t1, name="t1")
    y = dmabuf.spawn(t2, name="t2")
    x.join()
    y.join()


def test_replay_reproduces_same_trace():
    res = dmabuf.explore(abba_body, strategy="dfs")
    f = res.failure
    assert f is not None and f.kind == "deadlock"
    assert f.schedule.startswith("dmabuf-s1:")
    assert "lock@A" in f.schedule  # labelled with the operation and object
    again = dmabuf.replay(abba_body, f.schedule)
    assert again is not None
    assert again.kind == "deadlock"
    assert again.trace == f.trace
    assert again.schedule == f.schedule


def test_replay_of_changed_program_reports_divergence():
    f = dmabuf.explore(abba_body, strategy="dfs").failure
    assert f is not None

    def changed():
        a = Mutex(name="A")
        b = Mutex(name="B")

        def t1():
            with b:  # t1 now starts with B
                pass

        def t2():
            with b, a:
                pass

        x = dmabuf.spawn(t1, name="t1")
        y = dmabuf.spawn(t2, name="t2")
        x.join()
        y.join()

    g = dmabuf.replay(changed, f.schedule)
    assert g is not None and g.kind == "nondeterminism"
    assert "diverged at step" in g.message
    assert "expected task 1 doing lock on A" in g.message


def test_encode_decode_roundtrip_and_compression():
    from dmabuf.explore.schedule import Entry

    entries = [Entry("t", 1, 0, "lock", "Mutex#1"), Entry("c", 2, 3), Entry("t", 2, 0, "x;y", "a@b:c%")]
    assert decode(encode(entries)) == entries
    long = [Entry("t", i % 3, 0, "lock", f"Mutex#{i}") for i in range(400)]
    s = encode(long)
    assert s.startswith("dmabuf-z1:")
    assert decode(s) == long


def test_several_executions_roundtrip_and_compression():
    """dmabuf-s2 holds several executions separated by '|'; a '|' inside a name is percent-encoded, one
    execution keeps the s1 form, and decode gives the last execution (the one whose failure it is)."""
    from dmabuf.explore.schedule import Entry, decode_runs, encode_runs

    runs = [[Entry("c", 0, 2), Entry("t", 1, 0, "lock", "a|b")], [], [Entry("c", 1, 2)]]
    s = encode_runs(runs)
    assert s.startswith("dmabuf-s2:") and s.count("|") == 2
    assert decode_runs(s) == runs and decode(s) == runs[-1]
    assert encode_runs(runs[:1]) == encode(runs[0]) and decode_runs(encode(runs[0])) == runs[:1]
    long = [[Entry("t", i % 3, 0, "lock", f"Mutex#{i}") for i in range(200)] for _ in range(3)]
    z = encode_runs(long)
    assert z.startswith("dmabuf-z2:") and decode_runs(z) == long
    with pytest.raises(ValueError, match="internal bug"):
        encode_runs([])


@pytest.mark.parametrize(
    "bad, words",
    [
        ("dmabuf-s2:c0/2", "has one"),
        ("dmabuf-s2:c0/2|c9/2", "entry 1 of execution 2"),
        ("dmabuf-z2:!!!!", "corrupt compressed"),
        ("garbage", "not a dmabuf replay string"),
        ("dmabuf-s9:t1:lock@A", "format 'dmabuf-s9'"),
        ("dmabuf-s1:t1lock", "entry 1"),
        ("dmabuf-s1:c5/3", "entry 1"),
        ("dmabuf-s1:x", "entry 1"),
        ("dmabuf-z1:!!!!", "corrupt compressed"),
    ],
)
def test_malformed_replay_strings(bad, words):
    with pytest.raises(ReplayFormatError, match=words):
        dmabuf.replay(abba_body, bad)


def test_replay_rejects_non_string_and_non_callable():
    with pytest.raises(ReplayFormatError):
        dmabuf.replay(abba_body, 42)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        dmabuf.replay(None, "dmabuf-s1:")  # type: ignore[arg-type]


def test_clean_replay_returns_none():
    def body():
        m = Mutex()
        with m:
            pass

    assert dmabuf.replay(body, "dmabuf-s1:") is None


def test_failure_story_is_readable():
    f = dmabuf.explore(abba_body, strategy="dfs").failure
    text = str(f)
    assert text.startswith("deadlock: wait-for cycle:")
    assert "t1 waits to lock B held by t2" in text
    assert "t2 waits to lock A held by t1" in text
    assert "Replay: dmabuf.replay(body, 'dmabuf-s1:" in text
    assert f.steps == 2 and f.preemptions == 1
    assert [(e.task, e.op, e.obj) for e in f.trace if e.op == "lock"] == [
        ("t1", "lock", "A"),
        ("t2", "lock", "B"),
    ]
    # the story ends with the state of every blocked task
    assert ("t1", "blocked", "B") in [(e.task, e.op, e.obj) for e in f.trace]


def test_trace_events_have_the_contracts_fields():
    """explorer-api.md: failure.trace is a list of events (task, operation, object, step)."""
    from dmabuf.examples.classic import abba_deadlock

    f = dmabuf.explore(abba_deadlock, database=None).failure
    assert f is not None
    locks = [(e.task, e.operation, e.object) for e in f.trace if e.operation == "lock"]
    assert ("t1", "lock", "A") in locks and ("t2", "lock", "B") in locks
    steps = [e.step for e in f.trace]
    assert steps == sorted(steps) and steps[-1] == f.steps
