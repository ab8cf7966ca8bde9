"""The roles' common base: ``trollmoves check`` asks the role's config module."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, ClassVar

from trollmoves_core.role import Role

if TYPE_CHECKING:
    from trollmoves_core.plugins import PluginHost
    from trollmoves_core.schema import Findings


class ConfiguredRole(Role):
    """A role whose config module (:attr:`CONFIG_MODULE`) declares its schema and checks: it exports
    ``recognises(content) -> int`` and ``check_config(out, path, host)``, which records the problems
    in the :class:`~trollmoves_core.schema.Findings` ``out``; the warnings its loaders log while it
    runs are recorded there too. The module is imported only when a check asks, so listing the
    roles stays fast."""

    CONFIG_MODULE: ClassVar[str]

    @classmethod
    def recognises(cls, content: Any) -> int:
        return importlib.import_module(cls.CONFIG_MODULE).recognises(content)

    @classmethod
    def check(cls, path: str, host: PluginHost) -> Findings:
        from trollmoves_core.schema import Findings

        out = Findings(path)
        with out.loader_warnings("trollmoves_roles"):
            importlib.import_module(cls.CONFIG_MODULE).check_config(out, path, host)
        return out
