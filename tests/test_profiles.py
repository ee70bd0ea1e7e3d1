"""Hardware profiles: the bundled figures, their sources, and every loading error."""

from pathlib import Path

import pytest

from neurodeploy.errors import SerializationError
from neurodeploy.profiles import PROFILE_DIR, CoreLimits, Profile, available_profiles, load_profile

LOIHI2 = (PROFILE_DIR / "loihi2.toml").read_text()


def test_bundled_profiles_load_and_every_number_has_a_source():
    names = available_profiles()
    assert {"loihi2", "loihi1", "emulator"} <= set(names)
    for name in names:
        p = load_profile(name)
        assert p.name == name and p.description
        keys = {"arithmetic.weight_bits", "arithmetic.weight_exp", "arithmetic.vth_bits", "arithmetic.bias_bits",
                "arithmetic.bias_exp", "arithmetic.du_bits", "arithmetic.dv_bits", "arithmetic.state_bits",
                "arithmetic.activation_bits", "arithmetic.delay", "arithmetic.message_bits", "reset.modes"}
        if p.limits is not None:
            keys |= {f"limits.{k}" for k in ("cores_per_chip", "neurons_per_core", "fan_in_axons_per_core",
                                             "fan_out_axons_per_core", "synaptic_memory_bits_per_core")}
        keys |= {f"energy.{k}" for k in p.energy}
        assert keys <= set(p.sources), keys - set(p.sources)
        assert all(s.strip() for s in p.sources.values())
        assert all(p.estimates[k].strip() for k in p.estimates)
        for figure in p.energy.values():
            assert figure.kind in ("measured", "simulated") and figure.source and figure.value >= 0


def test_loihi2_figures():
    p = load_profile("loihi2")
    a = p.arithmetic
    assert (a.weight_bits, a.vth_bits, a.bias_bits, a.du_bits, a.dv_bits, a.state_bits) == (8, 17, 13, 12, 12, 24)
    assert (a.bias_exp_min, a.bias_exp_max, a.delay_min, a.delay_max) == (0, 7, 0, 62)
    assert (a.vth_max, a.bias_min, a.bias_max, a.du_max, a.state_max) == (131071, -4096, 4095, 4095, 2 ** 23 - 1)
    assert "62" in p.source("arithmetic.delay") and "63" in p.source("arithmetic.delay")  # why not Lava's 63
    assert p.reset_modes == ("zero",)
    lim = p.limits
    assert (lim.cores_per_chip, lim.neurons_per_chip, lim.synapses_per_chip) == (128, 1_000_000, 120_000_000)
    assert p.is_estimate("limits.neurons_per_core") and not p.is_estimate("limits.cores_per_chip")
    assert "[estimate:" in p.source("limits.neurons_per_core")
    assert all(f.proxy for f in p.energy.values())  # no public Loihi 2 per-op energy: Loihi 1's, marked proxy


def test_loihi1_figures_match_davies_2018():
    p = load_profile("loihi1")
    lim = p.limits
    assert (lim.neurons_per_core, lim.fan_in_axons_per_core, lim.fan_out_axons_per_core) == (1024, 4096, 4096)
    assert (lim.synaptic_memory_bits_per_core, lim.cores_per_chip) == (128 * 1024 * 8, 128)
    assert lim.core_limits() == CoreLimits(neurons_per_core=1024, fan_in_axons_per_core=4096,
                                           fan_out_axons_per_core=4096,
                                           synaptic_memory_bits_per_core=128 * 1024 * 8, cores_per_chip=128)
    e = p.energy
    assert (e["synaptic_op"].value, e["neuron_update_active"].value, e["neuron_update_inactive"].value) == (
        23.6, 81.0, 52.0)
    assert all(f.kind == "simulated" and "Davies" in f.source and not f.proxy for f in e.values())


def test_emulator_is_loihi2_arithmetic_without_limits_plus_subtract():
    emu, l2 = load_profile("emulator"), load_profile("loihi2")
    assert emu.arithmetic == l2.arithmetic
    assert emu.limits is None and set(emu.reset_modes) == {"zero", "subtract"}


def test_load_by_path_and_passthrough(tmp_path):
    path = tmp_path / "board.toml"
    path.write_text(LOIHI2.replace('name = "loihi2"', 'name = "board"'))
    p = load_profile(path)
    assert p.name == "board" and p.path == str(path)
    assert load_profile(str(path)).name == "board"
    assert load_profile(p) is p and isinstance(p, Profile)


def error(tmp_path, text, name="bad.toml"):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SerializationError) as info:
        load_profile(path)
    return str(info.value)


def test_unknown_name_and_missing_file_list_the_available_profiles(tmp_path):
    with pytest.raises(SerializationError, match="unknown hardware profile 'loihi3'.*loihi1.*loihi2"):
        load_profile("loihi3")
    with pytest.raises(SerializationError, match="does not exist.*emulator"):
        load_profile(tmp_path / "nope.toml")


@pytest.mark.parametrize(("edit", "fragment"), [
    (lambda t: t.replace("[arithmetic]", "[arithmetic\n"), "not valid TOML"),
    (lambda t: t.replace("format = 1", "format = 2"), "format is 2"),
    (lambda t: t.replace('name = "loihi2"\n', ""), "missing 'name'"),
    (lambda t: t.replace("vth_bits = { value = 17, source", "vth_bits = { value = 17, src"), "unknown keys ['src']"),
    (lambda t: t.replace('vth_bits = { value = 17, source = "', 'vth_bits = { value = 17, source = " '
                         '", x = "'), "unknown keys ['x']"),
    (lambda t: t.replace("vth_bits = { value = 17", "vth_bits = { value = \"17\""), "must be an integer"),
    (lambda t: t.replace("weight_bits = { value = 8", "weight_bits = { value = 9"), "1 to 8 mantissa bits"),
    (lambda t: t.replace("bias_exp = { min = 0, max = 7", "bias_exp = { min = 7, max = 0"), "min 7 > max 0"),
    (lambda t: t.replace('modes = ["zero"]', 'modes = ["hold"]'), "'reset.modes'"),
    (lambda t: t.replace("cores_per_chip = { value = 128", "cores_per_chip = { value = 0"), "must be positive"),
    (lambda t: t.replace('kind = "simulated"', 'kind = "guessed"', 1), "'energy.synaptic_op.kind'"),
    (lambda t: t.replace("neurons_per_core = { value = 8192, estimate = true, source = \"derived from Intel "
                         "Loihi 2 brief 2021\", reason = ", "neurons_per_core = { value = 8192, estimate = true, "
                         "source = \"derived\", why = "), "unknown keys ['why']"),
    (lambda t: t.replace("[limits]", "[limits]\ncores = { value = 1, source = \"x\" }"), "[limits] has unknown keys"),
])
def test_malformed_profiles_name_file_and_key(tmp_path, edit, fragment):
    text = edit(LOIHI2)
    assert text != LOIHI2, "the edit must change the file"
    msg = error(tmp_path, text)
    assert "bad.toml" in msg and fragment in msg and "Fix:" in msg


def test_a_number_without_source_or_an_estimate_without_reason_is_rejected(tmp_path):
    msg = error(tmp_path, LOIHI2.replace('vth_bits = { value = 17, source = "Lava 0.10.0 proc/lif/models.py '
                                         'PyLifModelBitAcc: vth unsigned 17-bit (0..131071), shifted left by 6" }',
                                         "vth_bits = { value = 17 }"))
    assert "'arithmetic.vth_bits' has no source" in msg
    msg = error(tmp_path, LOIHI2.replace('chips = { value = 1152, source =',
                                         'chips = { value = 1152, estimate = true, source ='))
    assert "'limits.chips' is marked estimate but gives no reason" in msg


def test_other_top_level_tables_are_kept_for_their_backend(tmp_path):
    path = tmp_path / "ext.toml"
    path.write_text(LOIHI2 + '\n[board]\nclock_mhz = { value = 100, source = "x" }\n')
    assert load_profile(path).extra["board"]["clock_mhz"]["value"] == 100


def test_profiles_dir_is_the_installed_package():
    assert PROFILE_DIR == Path(__import__("neurodeploy.hw_profiles", fromlist=["x"]).__file__).resolve().parent
