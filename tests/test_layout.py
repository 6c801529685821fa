"""The layout rules of docs/development.md that import-linter does not check itself."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "usdenoise"
OPTIONAL = ("pydicom", "SimpleITK", "bm3d", "monai", "matplotlib", "pywt", "PIL", "cv2",
            "safetensors", "gdcm", "pylibjpeg", "scipy", "skimage", "pytorch_msssim", "tomli",
            "tomllib", "shutil")


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def test_no_function_local_package_imports_outside_cli() -> None:
    """Function-local imports only for optional extras and in cli/ (start-up time)."""
    offenders = []
    for name, path in _modules().items():
        if name.startswith("usdenoise.cli"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for sub in ast.walk(node):
                    if isinstance(sub, ast.ImportFrom) and (sub.module or "").startswith(
                            "usdenoise"):
                        offenders.append(f"{name}:{sub.lineno} {sub.module}")
    assert not offenders, offenders


def test_no_private_names_cross_modules() -> None:
    offenders = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("usdenoise"):
                offenders += [f"{name}: {node.module}.{a.name}" for a in node.names
                              if a.name.startswith("_") and a.name != "__version__"]
    assert not offenders, offenders


def test_every_module_is_named_by_a_test() -> None:
    tests = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").rglob("*.py"))

    def named(name: str) -> bool:
        parent, _, leaf = name.rpartition(".")
        return name in tests or re.search(rf"from {re.escape(parent)} import [^\n]*\b{leaf}\b",
                                          tests) is not None

    missing = [name for name in _modules()
               if name.count(".") >= 1 and not named(name) and not name.endswith("__main__")]
    assert not missing, f"modules no test imports by name: {missing}"
