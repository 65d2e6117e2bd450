"""The ``__init__`` code of :mod:`multihome.values`' classes, written out per shape.

Each function is ``values._template_source(count, into_dict)`` for one shape the package's
classes use (``set_N``: ``object.__setattr__`` of N fields; ``dict_N``: stored into the
instance's ``__dict__``), so that its code comes from the bytecode cache instead of an
``exec`` on every start (~0.8 M instructions each). Not called as they are: ``values._init``
takes each one's code and gives it its own globals (``_set``, ``_factories``, ``_fill``, the
fields' names ``_n0``...). ``tests/unit/test_values.py`` checks that each compiles to the
template's code and that every class of the package finds its shape here.

Generated: ``python -m multihome.values --write-inits`` rewrites this file for the shapes the
package's classes use (run it when a class gets a field count no other class has, and commit
the result); do not edit it by hand.
"""

# ruff: noqa: F821


def set_2(
    self,
    _0,
    _1,
):
    _set(self, _n0, _0)
    _set(self, _n1, _1)
    if _factories:
        _fill(self)


def set_3(
    self,
    _0,
    _1,
    _2,
):
    _set(self, _n0, _0)
    _set(self, _n1, _1)
    _set(self, _n2, _2)
    if _factories:
        _fill(self)


def set_4(
    self,
    _0,
    _1,
    _2,
    _3,
):
    _set(self, _n0, _0)
    _set(self, _n1, _1)
    _set(self, _n2, _2)
    _set(self, _n3, _3)
    if _factories:
        _fill(self)


def set_5(
    self,
    _0,
    _1,
    _2,
    _3,
    _4,
):
    _set(self, _n0, _0)
    _set(self, _n1, _1)
    _set(self, _n2, _2)
    _set(self, _n3, _3)
    _set(self, _n4, _4)
    if _factories:
        _fill(self)


def set_6(
    self,
    _0,
    _1,
    _2,
    _3,
    _4,
    _5,
):
    _set(self, _n0, _0)
    _set(self, _n1, _1)
    _set(self, _n2, _2)
    _set(self, _n3, _3)
    _set(self, _n4, _4)
    _set(self, _n5, _5)
    if _factories:
        _fill(self)


def set_7(
    self,
    _0,
    _1,
    _2,
    _3,
    _4,
    _5,
    _6,
):
    _set(self, _n0, _0)
    _set(self, _n1, _1)
    _set(self, _n2, _2)
    _set(self, _n3, _3)
    _set(self, _n4, _4)
    _set(self, _n5, _5)
    _set(self, _n6, _6)
    if _factories:
        _fill(self)


def set_9(
    self,
    _0,
    _1,
    _2,
    _3,
    _4,
    _5,
    _6,
    _7,
    _8,
):
    _set(self, _n0, _0)
    _set(self, _n1, _1)
    _set(self, _n2, _2)
    _set(self, _n3, _3)
    _set(self, _n4, _4)
    _set(self, _n5, _5)
    _set(self, _n6, _6)
    _set(self, _n7, _7)
    _set(self, _n8, _8)
    if _factories:
        _fill(self)


def set_10(
    self,
    _0,
    _1,
    _2,
    _3,
    _4,
    _5,
    _6,
    _7,
    _8,
    _9,
):
    _set(self, _n0, _0)
    _set(self, _n1, _1)
    _set(self, _n2, _2)
    _set(self, _n3, _3)
    _set(self, _n4, _4)
    _set(self, _n5, _5)
    _set(self, _n6, _6)
    _set(self, _n7, _7)
    _set(self, _n8, _8)
    _set(self, _n9, _9)
    if _factories:
        _fill(self)


def set_11(
    self,
    _0,
    _1,
    _2,
    _3,
    _4,
    _5,
    _6,
    _7,
    _8,
    _9,
    _10,
):
    _set(self, _n0, _0)
    _set(self, _n1, _1)
    _set(self, _n2, _2)
    _set(self, _n3, _3)
    _set(self, _n4, _4)
    _set(self, _n5, _5)
    _set(self, _n6, _6)
    _set(self, _n7, _7)
    _set(self, _n8, _8)
    _set(self, _n9, _9)
    _set(self, _n10, _10)
    if _factories:
        _fill(self)


def set_12(
    self,
    _0,
    _1,
    _2,
    _3,
    _4,
    _5,
    _6,
    _7,
    _8,
    _9,
    _10,
    _11,
):
    _set(self, _n0, _0)
    _set(self, _n1, _1)
    _set(self, _n2, _2)
    _set(self, _n3, _3)
    _set(self, _n4, _4)
    _set(self, _n5, _5)
    _set(self, _n6, _6)
    _set(self, _n7, _7)
    _set(self, _n8, _8)
    _set(self, _n9, _9)
    _set(self, _n10, _10)
    _set(self, _n11, _11)
    if _factories:
        _fill(self)


def dict_5(
    self,
    _0,
    _1,
    _2,
    _3,
    _4,
):
    _set(
        self,
        "__dict__",
        {
            _n0: _0,
            _n1: _1,
            _n2: _2,
            _n3: _3,
            _n4: _4,
        },
    )
    if _factories:
        _fill(self)


def dict_6(
    self,
    _0,
    _1,
    _2,
    _3,
    _4,
    _5,
):
    _set(
        self,
        "__dict__",
        {
            _n0: _0,
            _n1: _1,
            _n2: _2,
            _n3: _3,
            _n4: _4,
            _n5: _5,
        },
    )
    if _factories:
        _fill(self)


def dict_11(
    self,
    _0,
    _1,
    _2,
    _3,
    _4,
    _5,
    _6,
    _7,
    _8,
    _9,
    _10,
):
    _set(
        self,
        "__dict__",
        {
            _n0: _0,
            _n1: _1,
            _n2: _2,
            _n3: _3,
            _n4: _4,
            _n5: _5,
            _n6: _6,
            _n7: _7,
            _n8: _8,
            _n9: _9,
            _n10: _10,
        },
    )
    if _factories:
        _fill(self)


def dict_22(
    self,
    _0,
    _1,
    _2,
    _3,
    _4,
    _5,
    _6,
    _7,
    _8,
    _9,
    _10,
    _11,
    _12,
    _13,
    _14,
    _15,
    _16,
    _17,
    _18,
    _19,
    _20,
    _21,
):
    _set(
        self,
        "__dict__",
        {
            _n0: _0,
            _n1: _1,
            _n2: _2,
            _n3: _3,
            _n4: _4,
            _n5: _5,
            _n6: _6,
            _n7: _7,
            _n8: _8,
            _n9: _9,
            _n10: _10,
            _n11: _11,
            _n12: _12,
            _n13: _13,
            _n14: _14,
            _n15: _15,
            _n16: _16,
            _n17: _17,
            _n18: _18,
            _n19: _19,
            _n20: _20,
            _n21: _21,
        },
    )
    if _factories:
        _fill(self)
