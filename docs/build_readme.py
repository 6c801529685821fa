"""Assemble README.md from docs/readme_head.md and the sections in docs/sections/.

The sections are the source of truth for each part; run `python docs/build_readme.py` after
editing one. (The README is committed, so a reader never needs to run this.)
"""

from pathlib import Path

DOCS = Path(__file__).resolve().parent
ORDER = [
    "cli", "default_model", "networks", "training", "segmentation", "study", "speckle",
    "classic_local", "classic_nonlocal", "metrics", "data", "io", "benchmarks", "development",
]


def main() -> None:
    parts = [(DOCS / "readme_head.md").read_text(encoding="utf-8").rstrip()]
    contents = ["", "## Contents", ""]
    for name in ORDER:
        path = DOCS / "sections" / f"{name}.md"
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8").rstrip()
        title = text.splitlines()[0].lstrip("# ").strip()
        anchor = "".join(c for c in title.lower() if c.isalnum() or c in " -").replace(" ", "-")
        contents.append(f"- [{title}](#{anchor})")
        parts.append(text)
    parts.insert(1, "\n".join(contents))
    (DOCS.parent / "README.md").write_text("\n\n".join(parts) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
