"""Doubly linked lists (``linux/list.h``) with the ``CONFIG_DEBUG_LIST`` checks, and ``container_of``.

List operations are plain memory operations, *not* scheduling points: the caller's lock protects the list,
as in the kernel. Corruption that ``CONFIG_DEBUG_LIST`` (lib/list_debug.c) detects -- a neighbour that does
not point back, adding an entry next to itself (double add), deleting an entry that was already deleted
(its pointers hold the poison values) -- raises :class:`~dmabuf.errors.KernelBug`, as with
``CONFIG_BUG_ON_DATA_CORRUPTION``.

**Containers.** An entry is an object with a :class:`ListHead` field (``self.node = ListHead()``);
``list_first_entry(head, Type, "node")`` and friends return that object. A node learns its container when
it is created inside a method of the container (the ``self`` of the creating method, which covers the usual
``self.node = ListHead()`` in ``__init__``), or explicitly with ``ListHead(container)`` /
``INIT_LIST_HEAD(node, container)``. The guess is always verified (``getattr(container, member) is node``);
when it fails, the objects referring to the node are searched once (slow, then cached); a node whose
container still cannot be found raises :class:`~dmabuf.errors.InvalidArgument` saying how to declare it.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from typing import Any, TypeVar

from ..errors import InvalidArgument
from ._warn import BUG

__all__ = [
    "INIT_LIST_HEAD",
    "LIST_HEAD",
    "LIST_POISON1",
    "LIST_POISON2",
    "ListHead",
    "container_of",
    "list_add",
    "list_add_tail",
    "list_count_nodes",
    "list_del",
    "list_del_init",
    "list_empty",
    "list_entry",
    "list_first_entry",
    "list_first_entry_or_null",
    "list_for_each",
    "list_for_each_entry",
    "list_for_each_entry_safe",
    "list_is_first",
    "list_is_last",
    "list_is_singular",
    "list_last_entry",
    "list_move",
    "list_move_tail",
    "list_next_entry",
    "list_splice_init",
    "list_splice_tail_init",
]

T = TypeVar("T")


class _Poison:
    """The values ``list_del`` leaves in a deleted entry (``LIST_POISON1``/``LIST_POISON2``)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: ``next`` of a deleted entry.
LIST_POISON1: Any = _Poison("LIST_POISON1")
#: ``prev`` of a deleted entry.
LIST_POISON2: Any = _Poison("LIST_POISON2")


def _guess_container(depth: int) -> object:
    """The ``self`` of the method ``depth`` frames up, if any (where a ListHead/Kref is created)."""
    try:
        f = sys._getframe(depth)
    except ValueError:
        return None
    code = f.f_code
    if code.co_argcount and code.co_varnames[0] == "self":
        return f.f_locals.get("self")
    return None


class ListHead:
    """A list node or list head (``struct list_head``). A new one is an empty list (``LIST_HEAD_INIT``):
    ``next`` and ``prev`` point to itself.

    Args:
        container: the object this node is a field of (found automatically when the node is created in a
            method of that object, see the module docstring).

    Pythonic API: ``len(head)``, ``bool(head)``, ``head.entries(Type, "member")``.

    Kernel: ``struct list_head`` (include/linux/types.h, include/linux/list.h).
    """

    __slots__ = ("_dm_container", "next", "prev")

    def __init__(self, container: object = None) -> None:
        self.next: ListHead = self
        self.prev: ListHead = self
        self._dm_container = container if container is not None else _guess_container(2)

    def nodes(self) -> Iterator[ListHead]:
        """The nodes of the list this head anchors, in order (``list_for_each``)."""
        return list_for_each(self)

    def entries(self, type_: type[T], member: str) -> Iterator[T]:
        """The containers of the nodes (``list_for_each_entry``)."""
        return list_for_each_entry(self, type_, member)

    def __len__(self) -> int:
        return list_count_nodes(self)

    def __bool__(self) -> bool:
        return True  # a ListHead is an object, not a collection: use list_empty()

    def __repr__(self) -> str:
        return f"<ListHead of {type(self._dm_container).__name__}>" if self._dm_container else "<ListHead>"


def LIST_HEAD(name: str | None = None) -> ListHead:
    """A new empty list head (``LIST_HEAD(name)``)."""
    return ListHead()


def _lh(x: object, fn: str, what: str = "list_head") -> ListHead:
    if not isinstance(x, ListHead):
        raise InvalidArgument(f"{fn} needs a ListHead as {what}, got {type(x).__name__}")
    return x


def INIT_LIST_HEAD(list: ListHead, container: object = None) -> None:
    """Make ``list`` an empty list / unlinked node. ``container``: see :class:`ListHead`.

    Kernel: ``INIT_LIST_HEAD``.
    """
    _lh(list, "INIT_LIST_HEAD")
    list.next = list
    list.prev = list
    if container is not None:
        list._dm_container = container


# ---------------------------------------------------------------------------------------------- debug checks


def _add_valid(new: ListHead, prev: Any, next: Any) -> None:
    if prev is None:
        BUG("list_add corruption. prev is NULL.")
    if next is None:
        BUG("list_add corruption. next is NULL.")
    if not isinstance(next, ListHead) or next.prev is not prev:
        BUG(
            f"list_add corruption. next->prev should be prev ({prev!r}), but was {_p(next, 'prev')}. (next={next!r})."
        )
    if not isinstance(prev, ListHead) or prev.next is not next:
        BUG(
            f"list_add corruption. prev->next should be next ({next!r}), but was {_p(prev, 'next')}. (prev={prev!r})."
        )
    if new is prev or new is next:
        BUG(f"list_add double add: new={new!r}, prev={prev!r}, next={next!r}.")


def _del_valid(entry: ListHead) -> None:
    prev, next = entry.prev, entry.next
    if next is LIST_POISON1:
        BUG(f"list_del corruption, {entry!r}->next is LIST_POISON1 ({next!r})")
    if prev is LIST_POISON2:
        BUG(f"list_del corruption, {entry!r}->prev is LIST_POISON2 ({prev!r})")
    if next is None:
        BUG(f"list_del corruption, {entry!r}->next is NULL")
    if prev is None:
        BUG(f"list_del corruption, {entry!r}->prev is NULL")
    if prev.next is not entry:
        BUG(f"list_del corruption. prev->next should be {entry!r}, but was {prev.next!r}. (prev={prev!r})")
    if next.prev is not entry:
        BUG(f"list_del corruption. next->prev should be {entry!r}, but was {next.prev!r}. (next={next!r})")


def _p(node: object, field: str) -> str:
    return repr(getattr(node, field, None))


def _insert(new: ListHead, prev: ListHead, next: ListHead) -> None:
    _add_valid(new, prev, next)
    next.prev = new
    new.next = next
    new.prev = prev
    prev.next = new


def _unlink(entry: ListHead) -> None:
    _del_valid(entry)
    entry.prev.next = entry.next
    entry.next.prev = entry.prev


# ---------------------------------------------------------------------------------------------- operations


def list_add(new: ListHead, head: ListHead) -> None:
    """Insert ``new`` right after ``head`` (stack order). Kernel: ``list_add``."""
    _insert(_lh(new, "list_add", "new"), _lh(head, "list_add", "head"), head.next)


def list_add_tail(new: ListHead, head: ListHead) -> None:
    """Insert ``new`` right before ``head`` (queue order). Kernel: ``list_add_tail``."""
    _insert(_lh(new, "list_add_tail", "new"), _lh(head, "list_add_tail", "head").prev, head)


def list_del(entry: ListHead) -> None:
    """Unlink ``entry`` and poison its pointers: using or deleting it again is caught.

    Kernel: ``list_del``."""
    _unlink(_lh(entry, "list_del", "entry"))
    entry.next = LIST_POISON1
    entry.prev = LIST_POISON2


def list_del_init(entry: ListHead) -> None:
    """Unlink ``entry`` and make it an empty node again. Kernel: ``list_del_init``."""
    _unlink(_lh(entry, "list_del_init", "entry"))
    entry.next = entry
    entry.prev = entry


def list_move(list: ListHead, head: ListHead) -> None:
    """Move ``list`` to right after ``head``. Kernel: ``list_move``."""
    _unlink(_lh(list, "list_move", "list"))
    list_add(list, head)


def list_move_tail(list: ListHead, head: ListHead) -> None:
    """Move ``list`` to right before ``head``. Kernel: ``list_move_tail``."""
    _unlink(_lh(list, "list_move_tail", "list"))
    list_add_tail(list, head)


def list_empty(head: ListHead) -> bool:
    """True if the list has no entries. Kernel: ``list_empty``."""
    return _lh(head, "list_empty", "head").next is head


def list_is_singular(head: ListHead) -> bool:
    """True if the list has exactly one entry. Kernel: ``list_is_singular``."""
    _lh(head, "list_is_singular", "head")
    return head.next is not head and head.next is head.prev


def list_is_first(list: ListHead, head: ListHead) -> bool:
    """True if ``list`` is the first entry of ``head``. Kernel: ``list_is_first``."""
    return _lh(list, "list_is_first").prev is _lh(head, "list_is_first", "head")


def list_is_last(list: ListHead, head: ListHead) -> bool:
    """True if ``list`` is the last entry of ``head``. Kernel: ``list_is_last``."""
    return _lh(list, "list_is_last").next is _lh(head, "list_is_last", "head")


def _splice(list: ListHead, prev: ListHead, next: ListHead) -> None:
    first, last = list.next, list.prev
    first.prev = prev
    prev.next = first
    last.next = next
    next.prev = last


def list_splice_init(list: ListHead, head: ListHead) -> None:
    """Move every entry of ``list`` to the front of ``head``; ``list`` becomes empty.

    Kernel: ``list_splice_init``."""
    _lh(list, "list_splice_init", "list")
    _lh(head, "list_splice_init", "head")
    if list.next is not list:
        _splice(list, head, head.next)
        INIT_LIST_HEAD(list)


def list_splice_tail_init(list: ListHead, head: ListHead) -> None:
    """Move every entry of ``list`` to the back of ``head``; ``list`` becomes empty.

    Kernel: ``list_splice_tail_init``."""
    _lh(list, "list_splice_tail_init", "list")
    _lh(head, "list_splice_tail_init", "head")
    if list.next is not list:
        _splice(list, head.prev, head)
        INIT_LIST_HEAD(list)


def list_count_nodes(head: ListHead) -> int:
    """Number of entries. Kernel: ``list_count_nodes``."""
    return sum(1 for _ in list_for_each(head))


# ---------------------------------------------------------------------------------------------- containers


def container_of(ptr: object, type: type[T], member: str) -> T:
    """The object of class ``type`` whose field ``member`` is ``ptr`` (C: ``container_of``).

    Works for any field object that records its container (``ListHead``, ``Kref``...) in ``_dm_container``.

    Raises:
        InvalidArgument: ``ptr`` is None, or no such container is known (create the field inside a method of
            the container -- typically ``__init__`` -- or pass the container explicitly).
    """
    if ptr is None:
        raise InvalidArgument(f"container_of(NULL, {getattr(type, '__name__', type)!r}, {member!r})")
    c = getattr(ptr, "_dm_container", None)
    if c is not None and isinstance(c, type) and getattr(c, member, None) is ptr:
        return c
    found = _search_container(ptr, type, member)
    if found is not None:
        try:
            ptr._dm_container = found  # type: ignore[attr-defined]
        except AttributeError:
            pass
        return found
    raise InvalidArgument(
        f"container_of: cannot find the {getattr(type, '__name__', type)} whose field {member!r} is {ptr!r} "
        f"(recorded container: {c.__class__.__name__ if c is not None else 'none'}). Create the field inside "
        f"a method of its container (self.{member} = ListHead() in __init__) or pass it explicitly: "
        f"ListHead(container) / INIT_LIST_HEAD(node, container)"
    )


def _search_container(ptr: object, type_: type[T], member: str) -> T | None:
    """Slow path: find the container among the objects that refer to ``ptr`` (directly or through their
    ``__dict__``)."""

    def match(o: object) -> bool:
        try:
            return isinstance(o, type_) and getattr(o, member, None) is ptr
        except Exception:
            return False

    for ref in gc.get_referrers(ptr):
        if match(ref):
            return ref  # type: ignore[no-any-return]
        if isinstance(ref, dict) and ref.get(member) is ptr:
            for owner in gc.get_referrers(ref):
                if match(owner):
                    return owner  # type: ignore[no-any-return]
    return None


def _entry_type(tp: object, member: object, fn: str) -> None:
    if not isinstance(tp, type):
        raise InvalidArgument(f"{fn} needs the container class as its type argument, got {tp!r}")
    if not isinstance(member, str):
        raise InvalidArgument(f"{fn} needs the member name as a string, got {member!r}")


def list_entry(ptr: ListHead, type: type[T], member: str) -> T:
    """The container of node ``ptr`` (C: ``list_entry``)."""
    if isinstance(ptr, _Poison):
        BUG(f"list_entry of a deleted node ({ptr!r}): the entry was removed with list_del while in use")
    return container_of(_lh(ptr, "list_entry", "ptr"), type, member)


def list_first_entry(head: ListHead, type: type[T], member: str) -> T:
    """The container of the first entry. The list must not be empty (C would return the head's own
    container; here that is an InvalidArgument unless the head itself is such a field).

    Kernel: ``list_first_entry``."""
    return list_entry(_lh(head, "list_first_entry", "head").next, type, member)


def list_last_entry(head: ListHead, type: type[T], member: str) -> T:
    """The container of the last entry. Kernel: ``list_last_entry``."""
    return list_entry(_lh(head, "list_last_entry", "head").prev, type, member)


def list_first_entry_or_null(head: ListHead, type: type[T], member: str) -> T | None:
    """The container of the first entry, or ``None`` for an empty list. Kernel: ``list_first_entry_or_null``."""
    _entry_type(type, member, "list_first_entry_or_null")
    if list_empty(head):
        return None
    return list_entry(head.next, type, member)


def list_next_entry(pos: object, member: str) -> Any:
    """The container of the node after ``pos.member`` (C: ``list_next_entry``); the caller checks for the
    head first (``list_is_last``)."""
    _entry_type(type(pos), member, "list_next_entry")
    node = _lh(getattr(pos, member, None), "list_next_entry", f"{type(pos).__name__}.{member}")
    return list_entry(node.next, type(pos), member)


def list_for_each(head: ListHead) -> Iterator[ListHead]:
    """Yield each node after ``head`` (C: ``list_for_each(pos, head)``). The next node is read after the
    loop body, as in C: deleting the current node inside the loop is caught (use the ``_safe`` variant)."""
    _lh(head, "list_for_each", "head")
    pos = head.next
    while pos is not head:
        if not isinstance(pos, ListHead):
            BUG(
                f"list_for_each: walked into {pos!r}: a node was deleted during the walk (use the _safe variant)"
            )
        yield pos
        pos = pos.next


def list_for_each_entry(head: ListHead, type: type[T], member: str) -> Iterator[T]:
    """Yield the container of each entry (C: ``list_for_each_entry(pos, head, member)``). Deleting the
    current entry inside the loop is caught as in C (it reads a poisoned pointer); use
    :func:`list_for_each_entry_safe` for that."""
    _entry_type(type, member, "list_for_each_entry")
    for node in list_for_each(head):
        yield list_entry(node, type, member)


def list_for_each_entry_safe(head: ListHead, type: type[T], member: str) -> Iterator[T]:
    """Like :func:`list_for_each_entry`, but the next entry is fetched before the body runs, so the body
    may delete the current one. Kernel: ``list_for_each_entry_safe``."""
    _lh(head, "list_for_each_entry_safe", "head")
    _entry_type(type, member, "list_for_each_entry_safe")
    pos = head.next
    while pos is not head:
        if not isinstance(pos, ListHead):
            BUG(f"list_for_each_entry_safe: walked into {pos!r}: the next entry was deleted by the body")
        nxt = pos.next
        yield list_entry(pos, type, member)
        pos = nxt
