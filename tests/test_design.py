"""One design identity and memory map, and the regressions of issue 10 (each fails without its fix)."""

import os
import stat
import zipfile

import numpy as np
import pytest

from conftest import require_simulator, tiny_design
from spikeforge.cli.main import main
from spikeforge.hdl.design import Design, DesignError
from spikeforge.hdl.params import DEFAULT_HW, HwError, HwParams
from spikeforge.model.config import ConfigError, preset, preset_dataset


def run_cli(capsys, *argv):
    code = main(list(argv))
    err = capsys.readouterr().err
    return code, err


# ---- design identity ------------------------------------------------------------------------

def test_design_json_round_trip_and_key():
    d = Design(preset("digits"), DEFAULT_HW)
    again = Design.from_json(d.to_json())
    assert again == d and again.key() == d.key() and len(d.key_bytes()) == 8
    assert Design(preset("digits"), DEFAULT_HW.replace(pes=4)).key() != d.key()
    assert Design(preset("digits").replace(reset_grad=True), DEFAULT_HW).key() != d.key()
    with pytest.raises(DesignError):
        Design.from_json('{"format": 99}')
    with pytest.raises(DesignError):
        Design.from_json("not json")


def test_memory_map_regions_and_list_entry():
    mm = Design(preset("digits").replace(layers=(64, 32, 10)).fit_accumulators(),
                DEFAULT_HW).memmap
    assert mm.S == 8 and mm.blocks == [4, 2] and mm.out_blocks_max == 4
    assert mm.wbase == [0, 4 * 64] and mm.sbase == [0, 4 * mm.NP]
    # the list entry's word-index field holds every block index of any layer, no more, and the
    # fields follow each other without gaps
    k, mask, values, wofs = (mm.be_list[n] for n in ("k", "mask", "values", "wofs"))
    assert (1 << k.width) >= mm.out_blocks_max and k.offset == 0
    assert mask.offset == k.width and values.offset == k.width + mm.P
    # the weight offset k * n_in of any word of any layer fits its field
    assert (1 << wofs.width) >= mm.weight_depth and wofs.offset == values.offset + values.width
    assert mm.be_list.width == k.width + mm.P + mm.P * mm.cfg.e_bits + wofs.width
    word = mm.be_list.pack(k=3, mask=0b101, values=7, wofs=3 * 64)
    assert mm.be_list.unpack(word) == {"k": 3, "mask": 0b101, "values": 7, "wofs": 192}
    usage = mm.usage()
    assert all(u["allocated_bits"] >= u["needed_bits"] for u in usage.values())


def test_dist_spill_splits_state_memories_at_a_power_of_two():
    """hw.dist_spill: the ULX3S's digits design keeps 512 words of u, eps and g in block RAM
    and the output block's 64 in distributed RAM, and x, hb, labels, pred and acc (8 Kbit or
    less) wholly in distributed RAM; w (640 = 512 + 128: a quarter more) and spk (16 Kbit)
    stay in block RAM, as does every memory without the switch; the design key changes, the
    default design's description does not."""
    from spikeforge.hdl.memmap import tail_split
    assert [tail_split(d) for d in (255, 256, 288, 300, 512, 576, 640, 2176)] == \
        [0, 0, 256, 0, 0, 512, 0, 2048]
    from spikeforge.fpga.boards import board
    plain = board("ulx3s-85f").design()
    split = Design(plain.cfg, plain.hw.replace(dist_spill=True))
    assert all(spec.split == 0 for spec in plain.memmap.memories.values())
    got = {name: spec.split for name, spec in split.memmap.memories.items() if spec.split}
    assert got == {"u": 512, "eps": 512, "g": 512}
    whole = {name for name, spec in split.memmap.memories.items() if spec.dist}
    assert whole == {"x", "labels", "pred", "hb", "acc"}
    usage = split.memmap.usage()
    assert usage["eps"]["block_ram_words"] == 512 and usage["x"]["block_ram_words"] == 0
    assert plain.key() != split.key() and "dist_spill" not in plain.hw.to_dict()
    with pytest.raises(HwError, match="set dist_ram=true"):
        HwParams(dist_ram=False, dist_spill=True).validate()


# ---- bug c: typed fields ----------------------------------------------------------------------

@pytest.mark.parametrize("value", ["False", "no", 2, 0, "true"])
def test_booleans_take_true_false_only(value):
    with pytest.raises(ConfigError, match="reset_grad must be true or false"):
        preset("digits").replace(reset_grad=value)
    with pytest.raises(HwError, match="pipeline must be true or false"):
        HwParams(pipeline=value).validate()


@pytest.mark.parametrize("field,value,message", [
    ("lr", "abc", "lr must be a finite number"), ("lr", float("inf"), "lr must be a finite"),
    ("alpha", True, "alpha must be a finite number"), ("timesteps", 2.0, "timesteps must be an int"),
    ("layers", 64, "layers must be at least 2 positive ints"),
])
def test_config_fields_are_type_checked(field, value, message):
    with pytest.raises(ConfigError, match=message):
        preset("digits").replace(**{field: value})


@pytest.mark.parametrize("option", ["reset_grad=False", "reset_grad=no", "reset_grad=2",
                                    "lr=abc", "layers=64", "lr=Infinity"])
def test_cli_refuses_bad_set_in_one_line(capsys, tmp_path, option):
    code, err = run_cli(capsys, "train", "--set", option, "--epochs", "1", "--out",
                        str(tmp_path / "o"), "--quiet")
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert option.split("=")[0] in err
    assert not (tmp_path / "o").exists()


def test_cli_refuses_bad_hw(capsys, tmp_path):
    code, err = run_cli(capsys, "verilog", "--hw", "pes=0", "-o", str(tmp_path))
    assert code == 2 and "pes must be" in err


# ---- bug d: benches take the preset's data set ----------------------------------------------

def test_bench_data_set_comes_from_the_preset(capsys, monkeypatch):
    seen = {}

    def fake_run(design, dataset, simulator):
        seen.update(layers=design.cfg.layers, dataset=dataset)
        return {}

    import spikeforge.sim.bench.be as be
    import spikeforge.sim.bench.fe as fe
    monkeypatch.setattr(fe, "run", fake_run)
    monkeypatch.setattr(be, "run", fake_run)
    assert main(["bench", "fe", "--preset", "mnist16"]) == 0
    assert seen == {"layers": (256, 256, 10), "dataset": "mnist16"}
    assert main(["bench", "be", "--preset", "digits4"]) == 0
    assert seen == {"layers": (16, 32, 10), "dataset": "digits4"}
    capsys.readouterr()
    code, err = run_cli(capsys, "bench", "fe", "--preset", "digits", "--set", "layers=16,8,10")
    assert code == 2 and "data set digits has 64 inputs" in err
    assert preset_dataset("digits4") == "digits4"


# ---- bug e: messages instead of tracebacks, resumption, files --------------------------------

def test_weights_corrupted_in_the_middle(tmp_path):
    from spikeforge.model.weights import WeightsError, load_weights, save_weights
    cfg = preset("digits")
    path = tmp_path / "w.npz"
    rng = np.random.default_rng(0)
    save_weights(path, [rng.integers(-100, 100, (cfg.layers[i + 1], cfg.layers[i]))
                        for i in range(cfg.n_layers)], cfg, "fixed")
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("w0.npy")
    middle = info.header_offset + 30 + len(info.filename) + info.compress_size // 2
    data[middle:middle + 16] = bytes(16)
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="truncated or corrupt"):
        load_weights(path, cfg, "fixed")


def test_train_outputs_resume_and_init(capsys, tmp_path):
    out = tmp_path / "run"
    base = ["train", "--dataset", "digits4", "--epochs", "1", "--quiet", "--out", str(out)]
    assert main(base) == 0
    mode = stat.S_IMODE(os.stat(out / "weights.npz").st_mode)
    mask = os.umask(0)
    os.umask(mask)
    assert mode == 0o666 & ~mask, oct(mode)
    # resume under another learning rate: refused, naming the field
    code, err = run_cli(capsys, *base[:4], "2", *base[5:], "--resume", "--set", "lr=0.0078125")
    assert code == 2 and "lr=" in err and "Traceback" not in err
    # resume to epoch 2: the events count both epochs' steps
    import json
    first = json.loads((out / "metrics.json").read_text())["events_per_step"]
    assert main([*base[:4], "2", *base[5:], "--resume"]) == 0
    both = json.loads((out / "metrics.json").read_text())
    assert both["epochs"] == 2 and both["events_per_step"] is not None
    assert len(both["events_per_step"]) == len(first)
    # a failed --init leaves no OUT behind
    code, err = run_cli(capsys, *base[:-1], str(tmp_path / "new"), "--init",
                        str(tmp_path / "missing.npz"))
    assert code == 2 and not (tmp_path / "new").exists()
    # OUT/weights.npz a directory, --out a file: messages
    (tmp_path / "d" / "weights.npz").mkdir(parents=True)
    code, err = run_cli(capsys, *base[:-1], str(tmp_path / "d"))
    assert code == 2 and "is a directory" in err
    (tmp_path / "file").write_text("x")
    code, err = run_cli(capsys, "verilog", "-o", str(tmp_path / "file" / "sub"))
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_resume_keeps_events_of_earlier_epochs(tmp_path):
    """events_per_step after a resume averages over every step, not only the resumed ones."""
    from spikeforge.model.train import TrainOptions, train
    cfg = preset("digits4")
    full = train(cfg, TrainOptions(dataset="digits4", epochs=2, out=str(tmp_path / "a"),
                                   progress=False), log=lambda *a: None)
    train(cfg, TrainOptions(dataset="digits4", epochs=1, out=str(tmp_path / "b"),
                            progress=False), log=lambda *a: None)
    resumed = train(cfg, TrainOptions(dataset="digits4", epochs=2, out=str(tmp_path / "b"),
                                      resume=True, progress=False), log=lambda *a: None)
    assert resumed["events_per_step"] == full["events_per_step"]


# ---- bug b: one weight layer ----------------------------------------------------------------

def test_one_weight_layer_verilog_lints_clean(tmp_path):
    require_simulator("verilator")
    from spikeforge.hdl.export import write_verilog
    from spikeforge.hdl.top import Accelerator
    from spikeforge.sim.verify.lint import lint
    design = tiny_design(layers=(16, 10))
    report = lint([write_verilog(Accelerator(design), "sf_accelerator", str(tmp_path))])
    assert report.clean, report.text


# ---- bug f: the bitstream's design key is checked at connect ---------------------------------

def test_connect_refuses_another_design():
    from amaranth.sim import Simulator

    from spikeforge.hdl.top import Accelerator
    from spikeforge.sim.host.driver import AcceleratorDriver
    from spikeforge.sim.host.protocol import ProtocolError
    from spikeforge.sim.host.transports import AmaranthTransport

    built, other = tiny_design(), tiny_design(batch=1)
    acc = Accelerator(built)
    seen = {}

    async def tb(ctx):
        seen["ok"] = await AcceleratorDriver(AmaranthTransport(ctx, acc.rx, acc.tx),
                                             built).connect()
        try:
            await AcceleratorDriver(AmaranthTransport(ctx, acc.rx, acc.tx), other).connect()
        except ProtocolError as exc:
            seen["error"] = str(exc)

    sim = Simulator(acc)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert seen["ok"]["key"] == built.key()
    assert built.key() in seen["error"] and other.key() in seen["error"]


def test_board_option_set(capsys, tmp_path):
    """`verilog --board` writes the design the board's bitstream carries."""
    from spikeforge.fpga.boards import board
    assert main(["verilog", "--board", "icebreaker", "-o", str(tmp_path)]) == 0
    written = Design.from_json((tmp_path / "design.json").read_text())
    assert written == board("icebreaker").design()
    assert written.cfg.layers == (16, 32, 10) and written.hw.pes == 1
    assert "--version" in main.__globals__["build_parser"]().format_help()


def test_board_from_a_synth_directory(tmp_path):
    """`train --engine board --board DIR` takes the design `spikeforge synth` recorded."""
    import argparse
    import json

    from spikeforge.cli.main import design_from_args
    from spikeforge.fpga.boards import board
    from spikeforge.fpga.synth import synth_meta
    built = board("icebreaker").design()
    (tmp_path / "synth.json").write_text(json.dumps(synth_meta("digits4", built, 12e6, 115200)))
    args = argparse.Namespace(set=None, hw=None, board=str(tmp_path), preset=None)
    assert design_from_args(args) == (built, "digits4")
    with pytest.raises(ConfigError, match="drop --preset/--set/--hw"):
        design_from_args(argparse.Namespace(set=["batch=2"], hw=None, board=str(tmp_path),
                                            preset=None))
    (tmp_path / "synth.json").write_text("{}")
    with pytest.raises(ConfigError, match="not a board name nor"):
        design_from_args(args)
