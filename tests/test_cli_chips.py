"""``neurodeploy compile --chips N``: the system size in chips reaches compile_graph; a too-small system is refused
with the capacity error naming the node, a big enough one compiles and reports the chips used. Also the CLI's
refusal of misplaced --population-size (spinnaker only)."""

import json

import pytest
from cli_runner import run_cli as cli
from graphs import two_chip_graph

from neurodeploy.ir import QuantInfo, save_graph

Q = QuantInfo(scale=100.0)


@pytest.fixture
def two_chip_model(tmp_path):
    """The 130-core graph of :func:`graphs.two_chip_graph`, saved: 2 Loihi 2 chips of 128 cores."""
    path = tmp_path / "wide.ndg"
    save_graph(two_chip_graph(Q), path)
    return path


def test_too_small_a_system_is_refused_and_a_big_enough_one_compiles(capsys, tmp_path, two_chip_model):
    code, out, err = cli(capsys, "compile", two_chip_model, "--target", "loihi2", "--chips", 1,
                         "--out", tmp_path / "one")
    assert code == 2 and "Traceback" not in err
    assert "node 'n'" in err and "130 cores on 2 loihi2 chips but the system has 1" in err
    assert "larger system" in err  # the fix
    assert not (tmp_path / "one").exists()  # nothing half-written
    code, out, err = cli(capsys, "compile", two_chip_model, "--target", "loihi2", "--chips", 2,
                         "--out", tmp_path / "two")
    assert code == 0, err
    assert "2 of 2 chips" in out
    mapping = json.loads((tmp_path / "two" / "manifest.json").read_text())["mapping"]
    assert (mapping["cores"], mapping["chips"], mapping["system_chips"]) == (130, 2, 2)


def test_bad_chip_counts_and_misplaced_population_size(capsys, tmp_path, two_chip_model):
    code, _, err = cli(capsys, "compile", two_chip_model, "--target", "loihi2", "--chips", 0,
                       "--out", tmp_path / "zero")
    assert code == 2 and "chips = 0 is not a positive number of chips" in err
    code, _, err = cli(capsys, "compile", two_chip_model, "--target", "loihi2", "--population-size", 64,
                       "--out", tmp_path / "p")
    assert code == 2 and "--population-size applies to --target spinnaker, not loihi2" in err
    code, out, _ = cli(capsys, "compile", "--help")
    assert code == 0 and "--chips" in out and "--population-size" in out and "system size in chips" in out


def test_backend_options_reach_only_a_backend_that_takes_them(tmp_path, two_chip_model):
    from neurodeploy.compiler import compile_graph, write_artifact
    from neurodeploy.errors import InputError
    from neurodeploy.ir import load_graph

    art = compile_graph(load_graph(two_chip_model), "loihi2", chips=2)
    with pytest.raises(InputError, match=r"backend options \['population_size'\].*lava backend does not take them"):
        write_artifact(art, tmp_path / "lava", backend_options={"population_size": 64})
    assert not (tmp_path / "lava").exists()
