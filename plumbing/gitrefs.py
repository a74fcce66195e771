"""Git ref names (tags, branches) that may be handed to Jenkins as the GIT_REF to build.

The rules of `git check-ref-format --allow-onelevel`, plus two of our own: no leading `-`
(a build script's `git checkout $GIT_REF` would read it as an option) and at most 255 bytes.
A name that breaks them cannot be a real tag or branch, so it is refused before it reaches a
build parameter.
# Reference: https://git-scm.com/docs/git-check-ref-format
"""

import re

MAX_LENGTH = 255
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//")


def is_valid_ref_name(name) -> bool:
    if not isinstance(name, str) or not name or len(name.encode("utf-8")) > MAX_LENGTH:
        return False
    if name == "@" or name.startswith(("-", "/")) or name.endswith(("/", ".")) or _FORBIDDEN.search(name):
        return False
    return all(part and not part.startswith(".") and not part.endswith(".lock") for part in name.split("/"))
