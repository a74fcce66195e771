"""The `tree=` parameter of Jenkins' remote API (hudson.model.Api, TreeString).

`tree=jobs[name,url,jobs[name]]{0,10}` keeps only the named properties, recursively; `{a,b}`
slices a list (from a to b, exclusive; `{a}` is one element, `{,b}` the first b). A property
named without a subtree that holds an object comes back as that object's `_class` alone, which
is how python-jenkins' get_all_jobs notices that a folder needs another request.
"""

from dataclasses import dataclass


class TreeError(ValueError):
    """A malformed tree expression (Jenkins answers 400)."""


@dataclass
class Node:
    children: dict | None = None
    window: tuple[int | None, int | None] | None = None


def parse(text: str) -> dict[str, Node]:
    spec, position = _parse_list(text, 0)
    if position != len(text):
        raise TreeError(f"Unexpected {text[position]!r} at {position} in tree {text!r}")
    return spec


def _parse_list(text: str, position: int) -> tuple[dict[str, Node], int]:
    spec: dict[str, Node] = {}
    while position < len(text) and text[position] not in "]":
        start = position
        while position < len(text) and (text[position].isalnum() or text[position] in "_$"):
            position += 1
        name = text[start:position]
        if not name:
            raise TreeError(f"Expected a property name at {position} in tree {text!r}")
        node = Node()
        if position < len(text) and text[position] == "[":
            node.children, position = _parse_list(text, position + 1)
            if position >= len(text) or text[position] != "]":
                raise TreeError(f"Unclosed [ in tree {text!r}")
            position += 1
        if position < len(text) and text[position] == "{":
            end = text.find("}", position)
            if end < 0:
                raise TreeError(f"Unclosed {{ in tree {text!r}")
            node.window = _window(text[position + 1 : end], text)
            position = end + 1
        spec[name] = node
        if position < len(text) and text[position] == ",":
            position += 1
    return spec, position


def _window(body: str, text: str) -> tuple[int | None, int | None]:
    try:
        if "," not in body:
            index = int(body)
            return index, index + 1
        low, high = body.split(",", 1)
        return (int(low) if low else None), (int(high) if high else None)
    except ValueError:
        raise TreeError(f"Bad range {{{body}}} in tree {text!r}") from None


def apply(value, spec: dict[str, Node]):
    """Keep only what `spec` names (plus `_class`) of a document."""
    if isinstance(value, list):
        return [apply(item, spec) for item in value]
    if not isinstance(value, dict):
        return value
    kept = {"_class": value["_class"]} if "_class" in value else {}
    for name, node in spec.items():
        if name in value:
            kept[name] = _property(value[name], node)
    return kept


def _property(value, node: Node):
    if isinstance(value, list) and node.window is not None:
        value = value[node.window[0] : node.window[1]]
    if node.children is not None:
        return apply(value, node.children)
    if isinstance(value, dict):
        return {"_class": value["_class"]} if "_class" in value else {}
    if isinstance(value, list):
        return [_property(item, node) if isinstance(item, dict) else item for item in value]
    return value


def depth(spec: dict[str, Node]) -> int:
    """How deep a tree reaches: the document must be built at least that deep."""
    return 1 + max((depth(n.children) for n in spec.values() if n.children), default=0)
