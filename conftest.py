"""Repository-wide pytest set-up.

- The Hypothesis profile (`HYPOTHESIS_PROFILE`) applies to every test.
- The layers import only as `checked_rl.spec`, `checked_rl.runtime`, `checked_rl.properties`.
  Pytest puts the checkout on `sys.path`, where the folders `spec/`, `runtime/` and
  `properties/` would also import as top-level packages (a second copy of every module); a
  finder refuses those names, so a test, a guide's example or a docstring that still uses
  them fails here as it would for a user.
"""

import sys
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType

from checked_rl.properties.profiles import load_profile

LAYERS = ("spec", "runtime", "properties")


class RefuseLayerNames(MetaPathFinder):
    """Refuse `import spec` (and `runtime`, `properties`): they are `checked_rl.<name>`."""

    def find_spec(
        self, fullname: str, path: object = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname in LAYERS:
            raise ModuleNotFoundError(
                f"No module named {fullname!r}: the layer is checked_rl.{fullname}",
                name=fullname,
            )
        return None


sys.meta_path.insert(0, RefuseLayerNames())
load_profile()
