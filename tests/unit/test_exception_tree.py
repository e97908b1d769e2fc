"""The exception tree drawn in ``pyct_driver.exception``'s docstring is the
tree of its classes: every class drawn once, under its real base, with the
HTTP status the drawing gives it."""

from __future__ import annotations

import inspect
import re

from pyct_driver import exception


def _classes() -> dict[str, type]:
    return {name: cls for name, cls in inspect.getmembers(
        exception, inspect.isclass)
        if issubclass(cls, exception.PyctError)
        and cls.__module__ == exception.__name__}


def _drawn() -> list[tuple[str, str | None, int | None]]:
    """(class, parent drawn, status drawn) for every name in the tree."""
    classes = _classes()
    tree = exception.__doc__.split("::", 1)[1]
    out, parents = [], {}
    for line in tree.splitlines():
        branch = re.search(r"[├└]── ", line)
        cont = re.match(r"^(\s*(?:│\s+)+)\S", line) if not branch else None
        if branch:
            depth = (branch.start() - 4) // 4 + 1
            text = line[branch.end():]
        elif cont:  # a list continued on the next line: same depth
            depth = (len(cont.group(1)) - 8) // 4 + 1
            text = line[cont.end() - 1:]
        elif line.strip().startswith("PyctError"):
            depth, text = 0, line.strip()
        else:
            continue
        names = [n for n in re.findall(r"\b[A-Z]\w+\b", text)
                 if n in classes]
        status = re.match(r"\w+ \((\d+)\)", text)
        for name in names:
            out.append((name, parents.get(depth - 1),
                        int(status.group(1)) if status else None))
        if len(names) == 1:
            parents[depth] = names[0]
    return out


def test_every_class_is_drawn_once_under_its_base():
    drawn = _drawn()
    assert sorted(n for n, _, _ in drawn) == sorted(_classes())
    for name, parent, status in drawn:
        cls = _classes()[name]
        if name != "PyctError":
            assert cls.__base__.__name__ == parent, name
        if status is not None:
            assert cls.code == status, name


def test_no_attribute_nobody_reads():
    # "fault" named Nova's fault key, which the API derives from the code
    assert not hasattr(exception.PyctError, "fault")
    assert exception.NoValidHost.safe and not exception.DBError.safe
