"""Sequence counters: readers retry when a write intervened and never return a torn pair."""

import pytest

import dmabuf
from dmabuf.errors import InvalidArgument
from dmabuf.kernel import (
    READ_ONCE,
    WRITE_ONCE,
    Seqcount,
    raw_read_seqcount,
    read_seqcount_begin,
    read_seqcount_retry,
    seqcount_init,
    write_seqcount_begin,
    write_seqcount_end,
)


class Pair:
    def __init__(self):
        self.seq = Seqcount()
        self.a = 0
        self.b = 0


def writer(p):
    write_seqcount_begin(p.seq)
    WRITE_ONCE(p, "a", 1)
    WRITE_ONCE(p, "b", 1)
    write_seqcount_end(p.seq)


def test_single_task_sequence(run_on):
    def body():
        p = Pair()
        start = read_seqcount_begin(p.seq)
        assert start == 0 and not read_seqcount_retry(p.seq, start)
        writer(p)
        assert raw_read_seqcount(p.seq) == 2
        assert read_seqcount_retry(p.seq, start)
        seqcount_init(p.seq)
        assert raw_read_seqcount(p.seq) == 0

    run_on(body)


def test_reader_never_sees_torn_pair_and_retries_when_needed(run_on):
    retried = []

    def body():
        p = Pair()
        tries = []

        def reader():
            while True:
                start = read_seqcount_begin(p.seq)
                a = READ_ONCE(p, "a")
                b = READ_ONCE(p, "b")
                tries.append((a, b))
                if not read_seqcount_retry(p.seq, start):
                    return a, b

        w = dmabuf.spawn(writer, p, name="writer")
        r = dmabuf.spawn(reader, name="reader")
        a, b = r.join()
        w.join()
        assert a == b, f"torn read {(a, b)}"
        if len(tries) > 1:
            retried.append(tries)

    res = run_on(body)
    if run_on.kind == "controlled":
        assert res.complete
        # some interleaving has the writer run between begin and retry: the reader retried there
        assert any(len(t) == 2 for t in retried)


def test_without_the_retry_check_a_torn_read_is_found():
    def body():
        p = Pair()

        def reader():
            read_seqcount_begin(p.seq)
            return READ_ONCE(p, "a"), READ_ONCE(p, "b")

        w = dmabuf.spawn(writer, p, name="writer")
        r = dmabuf.spawn(reader, name="reader")
        a, b = r.join()
        w.join()
        assert a == b, f"torn read {(a, b)}"

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is not None and res.failure.kind == "exception"
    assert "torn read (0, 1)" in str(res.failure.exception)


def test_reader_waits_while_write_in_progress():
    def body():
        s = Seqcount()
        write_seqcount_begin(s)
        t = dmabuf.spawn(read_seqcount_begin, s, name="reader")
        write_seqcount_end(s)
        assert t.join() == 2  # it could only begin once the sequence was even again

    res = dmabuf.explore(body, strategy="dfs")
    assert res.ok and res.complete


def test_pythonic_api(run_on):
    def body():
        p = Pair()
        with p.seq.write():
            p.a = p.b = 5
        assert p.seq.read(lambda: (p.a, p.b)) == (5, 5)
        assert p.seq.sequence == 2

    run_on(body)


def test_writer_misuse_warns():
    def two_writers():
        s = Seqcount()
        write_seqcount_begin(s)
        write_seqcount_begin(s)

    res = dmabuf.explore(two_writers, strategy="dfs")
    assert res.failure is not None and res.failure.exception.rule == "seqcount: concurrent writers"

    def end_without_begin():
        write_seqcount_end(Seqcount())

    res = dmabuf.explore(end_without_begin, strategy="dfs")
    assert res.failure is not None and res.failure.exception.rule == "seqcount: end without begin"


def test_bad_arguments():
    def body():
        with pytest.raises(InvalidArgument):
            read_seqcount_begin(None)
        with pytest.raises(InvalidArgument):
            read_seqcount_retry(Seqcount(), None)

    assert dmabuf.explore(body, strategy="dfs").ok
