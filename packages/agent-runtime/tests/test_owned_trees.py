"""Sizing and removing trees a tool shaped against the runtime (see _owned_trees)."""

from __future__ import annotations

import math
import os
import stat
import threading
from pathlib import Path

from agent_runtime._owned_trees import ENTRY_BLOCK, MAX_SIZED_DEPTH, remove_tree, tree_size


def _nest(top: Path, depth: int) -> Path:
    """``depth`` directories, one inside the other, with a file at the bottom (by descriptor:
    the path itself would pass PATH_MAX)."""
    top.mkdir()
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(depth):
        os.mkdir("d", dir_fd=fd)
        inner = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = inner
    with open(os.open("f", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd), "w") as bottom:
        bottom.write("x")
    os.close(fd)
    return top


def test_a_tree_nested_thousands_deep_is_removed_and_counts_as_over_any_budget(tmp_path: Path) -> None:
    deep = _nest(tmp_path / "deep", 3000)
    shallow = _nest(tmp_path / "shallow", MAX_SIZED_DEPTH - 1)

    # each directory and the 1-byte file count a block
    assert tree_size(deep) == math.inf and tree_size(shallow) == MAX_SIZED_DEPTH * ENTRY_BLOCK
    remove_tree(deep)
    assert not deep.exists()


def test_removal_opens_up_what_a_tool_locked_and_never_follows_a_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "kept").mkdir(parents=True)
    (outside / "kept" / "file").write_text("keep me")
    tree = tmp_path / "tree"
    (tree / "locked" / "inner").mkdir(parents=True)
    (tree / "locked" / "inner" / "file").write_text("x")
    (tree / "link").symlink_to(outside)
    (tree / "locked" / "link").symlink_to(outside / "kept")
    for directory in (tree / "locked" / "inner", tree / "locked", tree):
        directory.chmod(0)

    remove_tree(tree)

    assert not tree.exists() and (outside / "kept" / "file").read_text() == "keep me"


def test_sizing_changes_no_modes(tmp_path: Path) -> None:
    """A directory the user made read-only stays so: only removal opens directories up."""
    (tmp_path / "work" / "read-only").mkdir(parents=True)
    (tmp_path / "work" / "read-only" / "notes.txt").write_text("12345")
    (tmp_path / "work" / "read-only").chmod(0o555)

    assert tree_size(tmp_path / "work") == 2 * ENTRY_BLOCK  # the directory and its 5-byte note
    assert stat.S_IMODE((tmp_path / "work" / "read-only").stat().st_mode) == 0o555
    assert tree_size(tmp_path / "missing") == 0


def test_empty_files_count_a_block_each_and_large_ones_their_bytes_or_blocks(tmp_path: Path) -> None:
    """A tool's flood of empty files (inodes, no bytes) must weigh against the disk budget."""
    (tmp_path / "flood").mkdir()
    for i in range(300):
        (tmp_path / "flood" / str(i)).touch()
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / "data").write_bytes(bytes(3 * ENTRY_BLOCK + 1))

    assert tree_size(tmp_path / "flood") == 300 * ENTRY_BLOCK
    held = os.stat(tmp_path / "big" / "data").st_blocks * 512  # a partly filled block is held whole
    assert tree_size(tmp_path / "big") == max(3 * ENTRY_BLOCK + 1, held)


def test_removal_never_leaves_the_tree_through_a_directory_moved_out_of_it(tmp_path: Path) -> None:
    """A directory moved elsewhere while it is emptied (a tool of another runtime sharing the
    sessions root, on a kernel without Landlock): going back up through its ``..`` led to
    where it went, and the names listed in the tree were removed there."""
    tree, outside = tmp_path / "tree", tmp_path / "outside"
    deep = tree / "a" / "b"
    deep.mkdir(parents=True)
    many = 20_000
    for n in range(many):
        (deep / f"f{n}").touch()
    outside.mkdir()
    for n in range(200):
        (tree / "a" / f"keep{n}").touch()  # in the tree: removed with it
        (outside / f"keep{n}").write_text("not the tree's")  # the same names, outside
    # removed after b (listed before it, taken from the end): what would be removed outside
    after_b = os.listdir(tree / "a")[: os.listdir(tree / "a").index("b")]
    assert after_b, "no name of a is removed after b: make more"

    def move_out_while_emptied() -> None:
        while len(os.listdir(deep)) == many:
            pass
        os.rename(deep, outside / "b")

    mover = threading.Thread(target=move_out_while_emptied)
    mover.start()
    try:
        remove_tree(tree)
    finally:
        mover.join()

    assert not tree.exists()
    assert sorted(p.name for p in outside.iterdir() if p.name != "b") == sorted(
        f"keep{n}" for n in range(200)
    )


def test_a_file_with_several_names_in_the_tree_counts_its_bytes_once(tmp_path: Path) -> None:
    """Hard links share their blocks (pnpm's store and node_modules, `git clone` of a local
    repository, `cp -al`): counted once per name, an ordinary install weighed double."""
    (tmp_path / "work").mkdir()
    data = tmp_path / "work" / "data"
    data.write_bytes(bytes(8 * 1024 * 1024))
    for n in range(3):
        os.link(data, tmp_path / "work" / f"name-{n}")

    held = os.stat(data).st_blocks * 512
    assert tree_size(tmp_path) == ENTRY_BLOCK + max(held, 8 * 1024 * 1024) + 3 * ENTRY_BLOCK
