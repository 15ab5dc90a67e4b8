"""Linked lists: operations, containers, and the CONFIG_DEBUG_LIST corruption checks (KernelBug)."""

import pytest

from dmabuf.errors import InvalidArgument, KernelBug
from dmabuf.kernel import (
    INIT_LIST_HEAD,
    KREF_INIT,
    LIST_HEAD,
    LIST_POISON1,
    LIST_POISON2,
    Kref,
    ListHead,
    container_of,
    kref_put,
    list_add,
    list_add_tail,
    list_count_nodes,
    list_del,
    list_del_init,
    list_empty,
    list_first_entry,
    list_first_entry_or_null,
    list_for_each_entry,
    list_for_each_entry_safe,
    list_is_last,
    list_is_singular,
    list_last_entry,
    list_move_tail,
    list_next_entry,
    list_splice_init,
    list_splice_tail_init,
)


class Item:
    def __init__(self, v):
        self.v = v
        self.node = ListHead()


def vals(head):
    return [e.v for e in list_for_each_entry(head, Item, "node")]


def test_add_order_and_entries():
    head = LIST_HEAD()
    assert list_empty(head) and list_first_entry_or_null(head, Item, "node") is None
    a, b, c = Item(1), Item(2), Item(3)
    list_add_tail(a.node, head)
    list_add_tail(b.node, head)
    list_add(c.node, head)
    assert vals(head) == [3, 1, 2]
    assert list_first_entry(head, Item, "node") is c
    assert list_last_entry(head, Item, "node") is b
    assert list_next_entry(c, "node") is a
    assert list_is_last(b.node, head) and not list_is_last(a.node, head)
    assert list_count_nodes(head) == 3 and len(head) == 3
    assert [e.v for e in head.entries(Item, "node")] == [3, 1, 2]
    list_move_tail(c.node, head)
    assert vals(head) == [1, 2, 3]
    list_del(a.node)
    assert a.node.next is LIST_POISON1 and a.node.prev is LIST_POISON2
    list_del_init(b.node)
    assert list_empty(b.node)
    assert list_is_singular(head) and vals(head) == [3]


def test_splice():
    h1, h2 = ListHead(), ListHead()
    items = [Item(i) for i in range(4)]
    for it in items[:2]:
        list_add_tail(it.node, h1)
    for it in items[2:]:
        list_add_tail(it.node, h2)
    list_splice_init(h1, h2)
    assert vals(h2) == [0, 1, 2, 3] and list_empty(h1)
    list_splice_tail_init(h2, h1)
    assert vals(h1) == [0, 1, 2, 3] and list_empty(h2)


def test_delete_while_iterating_needs_safe_variant():
    head = ListHead()
    items = [Item(i) for i in range(3)]
    for it in items:
        list_add_tail(it.node, head)
    for e in list_for_each_entry_safe(head, Item, "node"):
        if e.v != 1:
            list_del(e.node)
    assert vals(head) == [1]
    list_add_tail(Item(5).node, head)
    with pytest.raises(KernelBug, match="deleted"):
        for e in list_for_each_entry(head, Item, "node"):
            list_del(e.node)


def test_double_add_is_a_bug():
    head = ListHead()
    a = Item(1)
    list_add(a.node, head)
    with pytest.raises(KernelBug, match=r"list_add double add"):
        list_add(a.node, head)


def test_add_with_corrupted_neighbours_is_a_bug():
    head = ListHead()
    a, b = Item(1), Item(2)
    list_add_tail(a.node, head)
    head.prev = b.node  # corrupt: head->prev no longer points at the last entry
    with pytest.raises(KernelBug, match=r"list_add corruption\. prev->next should be next"):
        list_add_tail(Item(3).node, head)
    head2 = ListHead()
    head2.next = None
    with pytest.raises(KernelBug, match=r"list_add corruption\. next is NULL"):
        list_add(Item(4).node, head2)


def test_del_of_deleted_entry_is_a_bug():
    head = ListHead()
    a = Item(1)
    list_add(a.node, head)
    list_del(a.node)
    with pytest.raises(KernelBug, match=r"list_del corruption, .*->next is LIST_POISON1"):
        list_del(a.node)


def test_del_with_corrupted_neighbour_is_a_bug():
    head = ListHead()
    a, b = Item(1), Item(2)
    list_add_tail(a.node, head)
    list_add_tail(b.node, head)
    a.node.next = head  # a no longer links to b
    with pytest.raises(KernelBug, match=r"list_del corruption\. prev->next should be"):
        list_del(b.node)


def test_container_found_when_created_elsewhere_or_explicit():
    class Bare:
        pass

    x = Bare()
    x.link = ListHead()  # created outside any method of x: found by the slow search
    head = ListHead()
    list_add(x.link, head)
    assert list_first_entry(head, Bare, "link") is x
    y = Bare()
    y.link = ListHead(y)
    assert container_of(y.link, Bare, "link") is y
    z = Bare()
    z.link = ListHead()
    INIT_LIST_HEAD(z.link, z)
    assert container_of(z.link, Bare, "link") is z


def test_container_of_kref():
    class Obj:
        def __init__(self):
            self.ref = KREF_INIT(1)

    o = Obj()
    assert container_of(o.ref, Obj, "ref") is o  # KREF_INIT inside Obj.__init__ recorded o
    k = Kref(o)
    assert k._dm_container is o


def test_bad_arguments():
    with pytest.raises(InvalidArgument):
        list_add(None, ListHead())
    with pytest.raises(InvalidArgument):
        list_empty(3)
    with pytest.raises(InvalidArgument, match="container_of"):
        container_of(ListHead(), Item, "node")
    with pytest.raises(InvalidArgument):
        container_of(None, Item, "node")


def test_kref_release_uses_container_of():
    import dmabuf

    class Obj:
        def __init__(self):
            self.refcount = Kref()
            self.freed = False

    def release(kref):
        container_of(kref, Obj, "refcount").freed = True

    def body():
        from dmabuf.kernel import kref_init

        o = Obj()
        kref_init(o.refcount)
        assert kref_put(o.refcount, release) == 1
        assert o.freed

    assert dmabuf.explore(body, strategy="dfs").ok
