from scanner.findings import FileState, Status
from scanner.forensics import ancestors, file_status, reachable_status
from scanner.layers import LayerIndex


def idx(
    added: set[str] | None = None,
    whiteouts: set[str] | None = None,
    opaque_dirs: set[str] | None = None,
) -> LayerIndex:
    return LayerIndex(
        added=added or set(), whiteouts=whiteouts or set(), opaque_dirs=opaque_dirs or set()
    )


def test_ancestors() -> None:
    assert ancestors("a/b/c") == ["a", "a/b"]
    assert ancestors("file") == []


def test_present_when_nothing_later_touches_it() -> None:
    layers = [idx(added={"app/.env"}), idx(added={"app/main.py"})]
    assert file_status("app/.env", 0, layers) == Status(FileState.PRESENT)


def test_whiteout_deletes() -> None:
    layers = [idx(added={"app/.env"}), idx(), idx(whiteouts={"app/.env"})]
    assert file_status("app/.env", 0, layers) == Status(FileState.DELETED, 2)


def test_whiteout_of_parent_deletes() -> None:
    layers = [idx(added={"app/secrets/id_rsa"}), idx(whiteouts={"app/secrets"})]
    assert file_status("app/secrets/id_rsa", 0, layers) == Status(FileState.DELETED, 1)


def test_opaque_parent_hides_even_if_layer_adds_other_files() -> None:
    layers = [
        idx(added={"app/secrets/id_rsa"}),
        idx(opaque_dirs={"app/secrets"}, added={"app/secrets/README"}),
    ]
    assert file_status("app/secrets/id_rsa", 0, layers) == Status(FileState.DELETED, 1)


def test_opaque_on_the_directory_itself_does_not_hide_its_siblings() -> None:
    layers = [idx(added={"app/a"}), idx(opaque_dirs={"app/b"})]
    assert file_status("app/a", 0, layers).state is FileState.PRESENT


def test_opaque_root() -> None:
    layers = [idx(added={"x"}), idx(opaque_dirs={""})]
    assert file_status("x", 0, layers) == Status(FileState.DELETED, 1)


def test_overwritten_by_later_layer() -> None:
    layers = [idx(added={"app/deploy.env"}), idx(), idx(), idx(added={"app/deploy.env"})]
    assert file_status("app/deploy.env", 0, layers) == Status(FileState.OVERWRITTEN, 3)


def test_readded_after_opaque_is_overwritten() -> None:
    layers = [idx(added={"d/f"}), idx(opaque_dirs={"d"}, added={"d/f"})]
    assert file_status("d/f", 0, layers) == Status(FileState.OVERWRITTEN, 1)


def test_parent_replaced_by_file_deletes() -> None:
    layers = [idx(added={"etc/app/key"}), idx(added={"etc/app"})]
    assert file_status("etc/app/key", 0, layers) == Status(FileState.DELETED, 1)


def test_first_later_change_wins() -> None:
    layers = [idx(added={"f"}), idx(whiteouts={"f"}), idx(added={"f"})]
    assert file_status("f", 0, layers) == Status(FileState.DELETED, 1)
    assert file_status("f", 2, layers) == Status(FileState.PRESENT)


def test_only_later_layers_count() -> None:
    layers = [idx(whiteouts={"f"}), idx(added={"f"})]
    assert file_status("f", 1, layers).state is FileState.PRESENT


def test_hard_link_keeps_a_deleted_file_reachable() -> None:
    first = idx(added={"app/key", "app/link"})
    first.hardlinks["app/link"] = "app/key"
    layers = [first, idx(whiteouts={"app/key"})]
    assert file_status("app/key", 0, layers).state is FileState.DELETED
    assert reachable_status("app/key", 0, layers) == Status(FileState.PRESENT)
    both_gone = [first, idx(whiteouts={"app/key", "app/link"})]
    assert reachable_status("app/key", 0, both_gone) == Status(FileState.DELETED, 1)


def test_earlier_copy_of_a_path_written_twice_in_one_layer_is_overwritten() -> None:
    layer = idx(added={"app/.env"})
    layer.duplicates["app/.env"] = 2
    layers = [layer]
    assert file_status("app/.env", 0, layers, occurrence=1) == Status(FileState.OVERWRITTEN, 0)
    assert file_status("app/.env", 0, layers, occurrence=2) == Status(FileState.PRESENT)
