"""Checks of what a spec's code references name, without importing anything (P6): Python
references (``package.module:function``) into the project or a declared feature library
(``requires``), the libraries' declarations themselves, and built-in on-demand functions (a
group's stored binning or PCA). A mixin of the semantic checker (``engine.compiler.semantics``),
which provides ``p`` (the project) and ``fail``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from engine.errors import did_you_mean
from engine.model import objects as m

_BANNED_MODULES = set(sys.stdlib_module_names) | {"engine"}


class ReferenceChecks:
    """The reference checks of ``_Checker``: it provides ``p``, ``fail`` and ``check_requires``'s
    results (``libraries``, ``unresolved``, ``unresolved_tops``)."""

    p: m.Project

    def check_builtin(self, project: m.Project, fn: m.Function) -> None:
        """A built-in function names a binning (or PCA) feature group and one of its outputs, with
        one input per value it bins (per column of the PCA, in its order)."""
        kind, group, column = fn.builtin
        path = ("functions", fn.name, kind)
        fg = project.feature_groups.get(group)
        if fg is None:
            self.fail(path, f"unknown feature group '{group}'", did_you_mean(group, list(project.feature_groups)))
            return
        t = fg.transform
        if kind == "binning":
            if not isinstance(t, m.BinningTransform):
                self.fail(path, f"feature group '{group}' is not a binning group", "name a feature group declared with from: and binning:")
                return
            outputs, wanted = [b.name for b in t.bins], 1
        else:
            if not isinstance(t, m.PcaTransform):
                self.fail(path, f"feature group '{group}' is not a PCA group", "name a feature group declared with from: and pca:")
                return
            outputs, wanted = [f"{t.pca.prefix}{i}" for i in range(1, t.pca.n_components + 1)], len(t.pca.columns)
        if column not in outputs:
            self.fail(path, f"'{column}' is not a {'bin column' if kind == 'binning' else 'principal component'} of feature group '{group}' (it has: {', '.join(outputs)})", did_you_mean(column, outputs))
        if len(fn.inputs) != wanted:
            what = "one input (the value to bin)" if kind == "binning" else f"{wanted} inputs, one per PCA column ({', '.join(t.pca.columns)}), in that order"
            self.fail(("functions", fn.name, "inputs"), f"'{fn.name}' takes {what}, got {len(fn.inputs)}")

    def check_requires(self) -> None:
        """Each declared feature library is installed, within its range, with readable metadata:
        read from the installed distribution's metadata, nothing imported (P6)."""
        from engine.compiler import libraries as libs

        self.libraries: dict[str, libs.Installed] = {}  # canonical name -> installed, in range
        self.unresolved: set[str] = set()  # canonical names declared but not usable
        self.unresolved_tops: set[str] = set()  # import names of installed libraries out of range
        seen: dict[str, int] = {}
        for i, req in enumerate(self.p.requires):
            path = ("requires", i)
            key = libs.canonical(req.package)
            if key in seen:
                self.fail(path + ("package",), f"library '{req.package}' is declared twice (also requires[{seen[key]}])", "declare each library once, with one version range")
                continue
            seen[key] = i
            spec = None
            if req.version is not None:
                from packaging.specifiers import InvalidSpecifier, SpecifierSet

                try:
                    spec = SpecifierSet(req.version)
                except InvalidSpecifier:
                    self.fail(path + ("version",), f"'{req.version}' is not a version range", "write a PEP 440 range, e.g. \">=1.2,<2\"")
                    self.unresolved.add(key)
                    continue
            try:
                found = libs.installed(req.package)
            except libs.LibraryError as exc:
                self.fail(path + ("package",), str(exc), f"reinstall it: pip install --force-reinstall '{req.package}'")
                self.unresolved.add(key)
                continue
            if found is None:
                self.unresolved.add(key)
                wanted = f"{req.package}{req.version or ''}"
                near = did_you_mean(req.package, libs.installed_names())
                self.fail(path + ("package",), f"library '{req.package}' is not installed", (near + "; or " if near else "") + f"install it: pip install '{wanted}'")
                continue
            if spec is not None and not spec.contains(found.version, prereleases=True):
                self.unresolved.add(key)
                self.unresolved_tops |= set(found.top_level)
                self.fail(path + ("version",), f"library '{found.name}' {found.version} is installed, outside the declared range '{req.version}'",
                          f"install a version in the range (pip install '{req.package}{req.version}'), or change the range")
                continue
            self.libraries[key] = found

    def check_python_module(self, path: tuple, module: str, function: str | None = None) -> None:
        """P6: a Python reference names a module of the project, or of a declared feature library
        (``requires``); checked from files and metadata, never imported here."""
        from engine.compiler import libraries as libs

        top = module.split(".")[0]
        if top in _BANNED_MODULES:
            self.fail(path, f"module '{module}' is not part of the project", "reference a function in the project's own package, e.g. my_features.module:function")
            return
        root = self.p.root
        candidates = [root / top, root / f"{top}.py", root / "src" / top, root / "src" / f"{top}.py"]
        if any(c.exists() for c in candidates):
            rel = Path(*module.split("."))
            base = next(c for c in candidates if c.exists())
            base_root = base.parent
            file = next((f for f in ((base_root / rel).with_suffix(".py"), base_root / rel / "__init__.py") if f.exists()), None)
            if file is None:
                self.fail(path, f"module '{module}' not found: no file {rel}.py in the project")
                return
            self.check_function_defined(path, module, function, file, "the project")
            return
        library = next((lib for lib in self.libraries.values() if top in lib.top_level), None)
        if library is None:
            if top in self.unresolved_tops or any(key.replace("-", "_") == libs.canonical(top).replace("-", "_") for key in self.unresolved):
                return  # its declaration is reported already
            owner = libs.owner_of(top)
            if owner is not None and libs.canonical(owner) not in self.unresolved:
                try:
                    lib = libs.installed(owner)
                    version = lib.version if lib else ""
                except libs.LibraryError:
                    version = ""
                self.fail(path, f"module '{module}' belongs to the installed library '{owner}' {version}, which the project does not declare",
                          f"declare it: requires: [{{package: {owner}, version: \">={version}\"}}]" if version else f"declare it under requires: [{{package: {owner}}}]")
                return
            self.fail(path, f"module '{module}' not found in the project (looked for {top}/ and {top}.py under {root.name or root}/ and src/) nor in a declared library",
                      "put the feature functions in a package inside the project, or declare the installed library that provides it under requires:")
            return
        file = libs.locate(module)
        if file is None:
            self.fail(path, f"module '{module}' not found in library '{library.name}' {library.version}", did_you_mean(module, libs.modules_of(top)))
            return
        self.check_function_defined(path, module, function, file, f"library '{library.name}' {library.version}")

    def check_function_defined(self, path: tuple, module: str, function: str | None, file: Path, where: str) -> None:
        from engine.compiler.libraries import bound_names

        if function is None:
            return
        names = bound_names(file)
        if names is not None and function not in names:
            public = sorted(n for n in names if not n.startswith("_"))
            self.fail(path, f"module '{module}' of {where} has no function '{function}'", did_you_mean(function, public))

