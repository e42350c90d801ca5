"""Tests of jaxnn.gradcheck: it passes correct gradients, catches and names wrong ones."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn import backprop, gradcheck, mlp

REPO = pathlib.Path(__file__).resolve().parents[1]


# A research-code function that is not an MLP: a nested pytree with a tuple, a dict and a
# scalar leaf, and extra arguments (an array and a Python float).
def _fn(params, x, scale):
    a, b = params["pair"]
    h = jnp.tanh(x @ a + b[None, :])
    return scale * jnp.sum(h * params["head"]["v"]) + params["s"] ** 2


def _grad(params, x, scale):
    a, b = params["pair"]
    h = jnp.tanh(x @ a + b[None, :])
    dh = scale * params["head"]["v"] * (1 - h**2)
    return {
        "pair": (x.T @ dh, dh.sum(0)),
        "head": {"v": scale * h},
        "s": 2 * params["s"],
    }


def _params(dtype=jnp.float64):
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
    return {
        "pair": (jax.random.normal(k1, (3, 4), dtype), jax.random.normal(k2, (4,), dtype)),
        "head": {"v": jax.random.normal(k3, (5, 4), dtype)},
        "s": jnp.asarray(0.7, dtype),
    }


X = jax.random.normal(jax.random.PRNGKey(1), (5, 3), jnp.float64)


def test_correct_gradient_passes_on_a_user_pytree():
    report = gradcheck.check_gradients(_fn, _params(), X, 1.5, grad_fn=_grad)
    assert report.passed, str(report)
    assert report.failed_leaves == ()
    assert [leaf.path for leaf in report.leaves] == ["head/v", "pair/0", "pair/1", "s"]
    for leaf in report.leaves:
        assert leaf.max_rel_error is not None and leaf.max_rel_error < 1e-12
        assert leaf.fd_max_rel_error is not None and leaf.fd_max_rel_error < 1e-6
        assert leaf.fd_elements == int(np.prod(leaf.shape))
    assert report.checked == "grad_fn" and report.dtype == "float64"
    text = str(report)
    assert "pair/0" in text and "PASSED" in text


@pytest.mark.parametrize(
    "leaf, corrupt",
    [
        ("pair/0", lambda g: {**g, "pair": (-g["pair"][0], g["pair"][1])}),  # sign flip
        ("head/v", lambda g: {**g, "head": {"v": 0.5 * g["head"]["v"]}}),  # missing factor
        ("s", lambda g: {**g, "s": g["s"] / 2}),  # a forgotten factor 2 in a scalar
        ("pair/1", lambda g: {**g, "pair": (g["pair"][0], g["pair"][1].at[2].add(1e-4))}),
    ],
    ids=["sign_flip", "missing_factor", "scalar_factor", "one_element"],
)
def test_planted_wrong_gradient_is_caught_and_named(leaf, corrupt):
    report = gradcheck.check_gradients(
        _fn, _params(), X, 1.5, grad_fn=lambda p, x, s: corrupt(_grad(p, x, s))
    )
    assert not report.passed
    assert report.failed_leaves == (leaf,)
    text = str(report)
    assert f"FAILED: {leaf}" in text
    bad = {r.path: r for r in report.leaves}[leaf]
    assert bad.max_rel_error > report.rtol and bad.fd_max_rel_error > report.fd_rtol


def test_autodiff_against_finite_differences_without_grad_fn():
    report = gradcheck.check_gradients(_fn, _params(), X, 1.5)
    assert report.passed and report.checked == "autodiff"
    assert all(leaf.max_abs_error is None for leaf in report.leaves)
    # A function whose autodiff is wrong (a custom_jvp with a planted bug) fails against FD.

    @jax.custom_jvp
    def bad_square(x):
        return x**2

    @bad_square.defjvp
    def _(primals, tangents):
        (x,), (t,) = primals, tangents
        return x**2, 3.0 * x * t  # should be 2 x t

    report = gradcheck.check_gradients(lambda p: jnp.sum(bad_square(p["w"])) + jnp.sum(p["ok"]),
                                       {"w": jnp.ones(3), "ok": jnp.ones(2)})
    assert report.failed_leaves == ("w",)


def test_grad_fn_output_forms_and_value_check():
    p = _params()
    vg = jax.value_and_grad(_fn)
    vg_aux = jax.value_and_grad(lambda p, x, s: (_fn(p, x, s), {"aux": 1.0}), has_aux=True)
    for grad_fn in (vg, vg_aux):
        report = gradcheck.check_gradients(_fn, p, X, 1.5, grad_fn=grad_fn)
        assert report.passed and report.value_error is not None and report.value_error < 1e-12
    wrong_value = lambda p, x, s: (_fn(p, x, s) + 1.0, _grad(p, x, s))
    report = gradcheck.check_gradients(_fn, p, X, 1.5, grad_fn=wrong_value)
    assert not report.passed and not report.value_passed and report.failed_leaves == ()
    assert "FAILED: value" in str(report)
    with pytest.raises(TypeError, match="grad_fn must return"):
        gradcheck.check_gradients(_fn, p, X, 1.5, grad_fn=lambda p, x, s: [1.0, 2.0, 3.0])
    # A value that is not one real number (a per-example loss vector): named, not a numpy
    # TypeError from float().
    per_example = lambda p, x, s: (jnp.full(5, _fn(p, x, s) / 5), _grad(p, x, s))
    with pytest.raises(TypeError, match=r"must be one real number .*shape \(5,\)"):
        gradcheck.check_gradients(_fn, p, X, 1.5, grad_fn=per_example)
    complex_value = lambda p, x, s: (_fn(p, x, s) + 0j, _grad(p, x, s))
    with pytest.raises(TypeError, match="one real number.*complex"):
        gradcheck.check_gradients(_fn, p, X, 1.5, grad_fn=complex_value)


def test_function_with_value_dependent_control_flow_runs_eagerly():
    def fn(p):  # jax.grad can differentiate this eagerly; jax.jit cannot trace it
        if p["w"].sum() > 0:
            return jnp.sum(p["w"] ** 3)
        return jnp.sum(p["w"])

    params = {"w": jnp.array([0.5, 1.0, 2.0])}
    good = gradcheck.check_gradients(fn, params, grad_fn=lambda p: {"w": 3 * p["w"] ** 2})
    assert good.passed, str(good)
    assert good.leaves[0].fd_elements == 3
    bad = gradcheck.check_gradients(fn, params, grad_fn=lambda p: {"w": 2 * p["w"] ** 2})
    assert bad.failed_leaves == ("w",)


def test_large_leaves_are_subsampled_with_a_fixed_seed():
    params = {"w": jax.random.normal(jax.random.PRNGKey(2), (40, 30), jnp.float64)}
    fn = lambda p: jnp.sum(jnp.sin(p["w"]))
    r1 = gradcheck.check_gradients(fn, params, max_fd_elements=50)
    r2 = gradcheck.check_gradients(fn, params, max_fd_elements=50)
    assert r1.passed and r1.leaves[0].fd_elements == 50
    assert r1.leaves[0].fd_max_abs_error == r2.leaves[0].fd_max_abs_error


def test_float32_gradient_with_64_bit_mode_off():
    # Reference is computed in float64 inside jax.enable_x64 even when x64 is off.
    with jax.enable_x64(False):
        p32 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), _params(jnp.float32))
        x32 = jnp.asarray(np.asarray(X), jnp.float32)
        report = gradcheck.check_gradients(_fn, p32, x32, 1.5, grad_fn=_grad)
        assert report.passed, str(report)
        assert report.dtype == "float32" and report.rtol == 1e-3
        errs = [leaf.max_rel_error for leaf in report.leaves]
        assert max(errs) > 1e-12  # float32 rounding is visible against a float64 reference
        bad = gradcheck.check_gradients(
            _fn, p32, x32, 1.5, grad_fn=lambda p, x, s: {**_grad(p, x, s), "s": -_grad(p, x, s)[
                "s"]},
        )
        assert bad.failed_leaves == ("s",)


def test_argument_errors():
    with pytest.raises(ValueError, match="params has no leaves"):
        gradcheck.check_gradients(lambda p: 0.0, {})
    with pytest.raises(ValueError, match="floating-point"):
        gradcheck.check_gradients(lambda p: 0.0, {"i": jnp.arange(3)})
    with pytest.raises(ValueError, match="rtol must be finite and > 0"):
        gradcheck.check_gradients(_fn, _params(), X, 1.0, rtol=0.0)
    with pytest.raises(ValueError, match="eps must be finite and > 0, got inf"):
        gradcheck.check_gradients(_fn, _params(), X, 1.0, eps=float("inf"))
    with pytest.raises(ValueError, match="atol must be finite and >= 0, got nan"):
        gradcheck.check_gradients(_fn, _params(), X, 1.0, atol=float("nan"))
    # Nothing to compare: it must not "pass".
    with pytest.raises(ValueError, match="grad_fn=None with fd=False compares nothing"):
        gradcheck.check_gradients(_fn, _params(), X, 1.0, fd=False)
    with pytest.raises(ValueError, match="max_fd_elements"):
        gradcheck.check_gradients(_fn, _params(), X, 1.0, max_fd_elements=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(dtype=jnp.int32), "dtype must be a floating-point dtype .* got 'int32'"),
        (dict(dtype="complex64"), "dtype must be a floating-point dtype .* got 'complex64'"),
        (dict(dtype="nonsense"), "dtype must be a floating-point dtype"),
        (dict(max_fd_elements=2.5), "max_fd_elements must be an int >= 1, got 2.5"),
        (dict(fd_batch_size=0), "fd_batch_size must be an int >= 1, got 0"),
        (dict(seed=-1), "seed must be an int >= 0, got -1"),
        # a step below float64's epsilon rounds to 0: 0/0 finite differences "FAILED"
        (dict(eps=1e-20), "eps must be >= 2.2e-16 .*got 1e-20"),
    ],
)
def test_bad_dtype_and_integer_arguments_are_named_value_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gradcheck.check_gradients(_fn, _params(), X, 1.0, grad_fn=_grad, **kwargs)


def test_complex_grad_fn_leaf_is_an_error_not_a_silent_pass():
    # Casting to float64 would drop the imaginary part and pass a wrong gradient.
    def bad(params, x, scale):
        g = _grad(params, x, scale)
        return {**g, "s": g["s"] + 5j}

    with pytest.raises(ValueError, match="leaf 's' is complex"):
        gradcheck.check_gradients(_fn, _params(), X, 1.0, grad_fn=bad)


def test_mixed_precision_params_get_the_tolerance_of_the_least_precise_leaf():
    # A float32 layer feeding a float64 one: jax.grad is correct to float32 precision, so
    # the float64 tolerance (rtol 1e-7) would fail it.
    k1, k2 = jax.random.split(jax.random.PRNGKey(2))
    params = {"a": jax.random.normal(k1, (3, 7), jnp.float32),
              "b": jax.random.normal(k2, (7, 2), jnp.float64)}

    def fn(p, x):
        h = jnp.tanh(x @ p["a"]).astype(jnp.float64)
        return jnp.sum(jnp.sin(h @ p["b"]) ** 2)

    report = gradcheck.check_gradients(fn, params, X.astype(jnp.float32), grad_fn=jax.grad(fn))
    assert report.passed, str(report)
    assert report.dtype == "float32" and report.rtol == 1e-3

# ----------------------------------------------------------------------------- MLPs


@pytest.mark.parametrize(
    "config_kwargs, loss",
    [
        (dict(layer_sizes=(4, 6, 5, 3), hidden_activation="tanh", batch_norm=True,
              dropout_rate=0.1, l2=1e-3), "softmax_cross_entropy_with_integer_labels"),
        (dict(layer_sizes=(4, 6, 3), hidden_activation="softplus", l1=1e-3,
              batch_norm=True, batch_norm_position="after_activation"),
         "sigmoid_binary_cross_entropy"),
        (dict(layer_sizes=(4, 6, 2), hidden_activation="elu", output_activation="tanh"), "mse"),
    ],
    ids=["tanh_bn_dropout_l2", "softplus_bn_after_l1", "elu_mse"],
)
def test_check_mlp_float64_against_autodiff_and_finite_differences(config_kwargs, loss):
    report = gradcheck.check_mlp(mlp.MLPConfig(**config_kwargs), loss)
    assert report.passed, str(report)
    assert all(leaf.fd_max_rel_error < 1e-5 for leaf in report.leaves)


def test_check_mlp_float32_and_eval_mode():
    config = mlp.MLPConfig(layer_sizes=(4, 6, 3), batch_norm=True, dropout_rate=0.2)
    report = gradcheck.check_mlp(config, "softmax_cross_entropy", dtype=jnp.float32,
                                 train=False, fd=False)
    assert report.passed and report.dtype == "float32"
    assert all(leaf.fd_max_abs_error is None for leaf in report.leaves)


def test_planted_bug_in_backprop_is_named():
    config = mlp.MLPConfig(layer_sizes=(4, 6, 5, 3), hidden_activation="tanh")
    loss = "softmax_cross_entropy_with_integer_labels"
    vg = backprop.value_and_grad(config, loss)
    loss_fn = mlp.make_loss_fn(config, loss)
    params, state = jax.jit(lambda k: mlp.init(config, k, dtype=jnp.float64))(
        jax.random.PRNGKey(0))
    x = jax.random.normal(jax.random.PRNGKey(1), (8, 4), jnp.float64)
    y = jnp.arange(8) % 3

    def buggy(p, s, x, y):
        value, grads = vg(p, s, x, y)
        grads["layers"][1]["b"] = -grads["layers"][1]["b"]
        return value, grads

    report = gradcheck.check_gradients(lambda p, s, x, y: loss_fn(p, s, x, y)[0], params,
                                       state, x, y, grad_fn=jax.jit(buggy))
    assert report.failed_leaves == ("layers/1/b",)


# ----------------------------------------------------------------------------- command line


def test_main_passes_and_prints_the_table(capsys):
    code = gradcheck.main(["--sizes", "4,6,6,3", "--activation", "tanh", "--batch-norm",
                           "--dropout", "0.1", "--l2", "1e-3", "--dtype", "float64",
                           "--seed", "0"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "layers/0/w" in out and "layers/1/bn/gamma" in out and "PASSED" in out


CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"


def test_main_checks_the_model_of_a_training_config(capsys):
    # The default (digits) job with a batch-norm/L2/dropout variant of its model: the data
    # set gives the input and output sizes (64 pixels, 10 classes).
    code = gradcheck.main([
        "--config", str(CONFIGS / "default.yaml"),
        "--set", "model.hidden_sizes=[12,8]", "--set", "model.batch_norm=true",
        "--set", "model.l2=0.001", "--set", "model.dropout_rate=0.1",
    ])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "model: 64 -> 12 -> 8 -> 10, hidden relu" in out
    assert "layers/1/bn/gamma" in out and "layers/2/w" in out and "PASSED" in out


def test_main_checks_the_label_smoothed_loss_of_a_training_config(capsys):
    # training.label_smoothing was ignored: the check passed on the plain loss's gradient,
    # not the one training uses.
    sets = ["--set", "model.hidden_sizes=[6]", "--set", "training.label_smoothing=0.3"]
    code = gradcheck.main(["--config", str(CONFIGS / "default.yaml"), *sets, "--no-fd"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "loss softmax_cross_entropy_with_integer_labels (label smoothing 0.3)" in out
    cfg = mlp.MLPConfig(layer_sizes=(64, 6, 10))
    loss = "softmax_cross_entropy_with_integer_labels"
    plain = gradcheck.check_mlp(cfg, loss, fd=False)
    smooth = gradcheck.check_mlp(cfg, loss, label_smoothing=0.3, fd=False)
    assert smooth.passed and plain.passed
    # the smoothed cross-entropy is 0.7 NLL + 0.3 (mean over classes of -log p)
    assert abs(smooth.value - plain.value) > 1e-3
    code = gradcheck.main(["--config", str(CONFIGS / "default.yaml"), "--set",
                           "training.label_smoothing=1.5"])
    assert code == 2 and "label_smoothing" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "bias_leaves"),
    [
        ([], {"layers/0/b", "layers/1/b", "layers/2/b"}),
        (["--bias", "true"], {"layers/0/b", "layers/1/b", "layers/2/b"}),
        (["--bias", "false"], set()),
        (["--no-bias"], set()),
        # auto: no bias on the hidden layers that feed batch norm (a bias there cancels).
        (["--bias", "auto"], {"layers/2/b"}),
    ],
)
def test_main_bias_flags_set_the_bias_layout(flags, bias_leaves, capsys):
    code = gradcheck.main(["--sizes", "4,6,6,3", "--batch-norm", "--no-fd", *flags])
    out = capsys.readouterr().out
    assert code == 0, out
    leaves = {line.split()[0] for line in out.splitlines() if line.startswith("layers/")}
    assert {leaf for leaf in leaves if leaf.endswith("/b")} == bias_leaves
    assert "layers/1/bn/gamma" in leaves


def test_main_returns_1_when_the_check_fails(capsys, monkeypatch):
    # A hand-written gradient 1% off (rtol=1e-300 no longer forces a failure: differences
    # within the measured rounding of autodiff pass, see the noise floor).
    right = backprop.value_and_grad

    def off_by_one_percent(*args, **kwargs):
        vg = right(*args, **kwargs)

        def fn(*a, **k):
            value, grads = vg(*a, **k)
            return value, jax.tree.map(lambda g: 1.01 * g, grads)

        return fn

    monkeypatch.setattr(gradcheck.backprop, "value_and_grad", off_by_one_percent)
    code = gradcheck.main(["--sizes", "3,4,2", "--no-fd"])
    assert code == 1
    assert "FAILED: layers/0/b, layers/0/w, layers/1/b, layers/1/w" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["--sizes", "4,x,3"],
        ["--sizes", "4"],
        ["--activation", "relux"],
        ["--dropout", "1.5"],
        ["--loss", "softmax_cross_entropy", "--output-activation", "sigmoid"],
        ["--loss", "nope"],
        ["--bogus"],
        ["--bias", "sometimes"],
        ["--bias", "auto", "--no-bias"],
        ["--config", str(CONFIGS / "default.yaml"), "--bias", "auto"],
        ["--dtype", "float16"],
        ["--batch-size", "0"],
        ["--activation-kwarg", "negative_slope"],
        ["--config", "no/such/config.yaml"],
        ["--config", str(CONFIGS / "default.yaml"), "--activation", "tanh"],
        ["--config", str(CONFIGS / "default.yaml"), "--set", "model.hidden_activation=relux"],
        ["--set", "model.l2=0.1"],
        ["--seed", "99999999999999999999"],  # jax.random.key takes int64
        ["--eps", "inf"],
        ["--eps", "1e-20"],  # the step would round to 0 (NaN finite differences): bad input
        ["--rtol", "inf"],
        ["--atol", "inf"],
        # A batch of one normalizes to 0: kinked activations sit at their kink.
        ["--batch-norm", "--batch-size", "1", "--activation", "relu"],
        # Training refuses a loss that does not fit the data set; so does gradcheck (here a
        # 1-class softmax, whose loss and gradients are all 0, "passed").
        ["--config", str(CONFIGS / "sine_regression.yaml"),
         "--set", "training.loss=softmax_cross_entropy_with_integer_labels"],
    ],
)
def test_main_bad_input_is_one_line_and_exit_2(argv, capsys):
    assert gradcheck.main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert captured.out == ""
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err


def test_a_loss_that_is_not_finite_is_named_not_reported_as_a_failed_gradient(capsys):
    # exp activations with all-ones weights overflow: every leaf read "nan against nan", a
    # FAILED check and exit 1 ("the backprop is wrong") where backprop and jax.grad agreed.
    assert gradcheck.main(["--activation", "exponential", "--initializer", "ones"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: the loss is nan at this model's random params (float64), so no "
                   "gradient can be checked there: try another --initializer or --activation")
    with pytest.raises(ValueError, match=r"fn's value is inf at these params"):
        gradcheck.check_gradients(lambda p: jnp.sum(jnp.exp(p)), jnp.full(3, 1e4))


@pytest.mark.parametrize("argv", [["--sizes", "99999999999,3"],
                                  ["--sizes", "4,1000000,3", "--batch-size", "10000000"]])
def test_main_a_check_bigger_than_memory_is_refused(argv, capsys):
    # It sat allocating float64 params until the system killed it.
    assert gradcheck.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(r"error: layer sizes \S+ with --batch-size \d+ need at least [\d.e+]+ "
                        r"GiB of float64 arrays, more than the device's [\d.]+ GiB: use "
                        r"smaller --sizes or --batch-size", err), err


@pytest.mark.parametrize("argv", [["--sizes", "-1,3"], ["--no-fd", "--sizes", "-4,3"]])
def test_main_a_negative_first_size_is_named(argv, capsys):
    # argparse took "-1,3" for an option and said only "expected one argument".
    assert gradcheck.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "layer_sizes entries must be ints >= 1" in err and "\n" not in err


@pytest.mark.parametrize("argv, needle", [
    (["--eps", "-1e-6"], "--eps must be finite and > 0, got -1e-06"),
    (["--rtol", "-1e-3"], "--rtol must be finite and > 0, got -0.001"),
    (["--atol", "-.5"], "--atol must be finite and >= 0, got -0.5"),
])
def test_main_a_negative_tolerance_in_e_notation_is_named(argv, needle, capsys):
    # argparse took "-1e-6" for an option and said only "expected one argument".
    assert gradcheck.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {needle}", err


@pytest.mark.parametrize("data_dir", ["2024", "null", "idx #1", "a: b"])
def test_main_data_dir_is_a_path_not_yaml(data_dir, capsys, tmp_path, monkeypatch):
    # --data-dir used to be pasted into "data.data_dir=VALUE" and read as YAML: 2024 became
    # an int ("expected str or null"), null dropped the flag, " #1" was cut as a comment.
    monkeypatch.chdir(tmp_path)
    code = gradcheck.main(["--config", str(CONFIGS / "mnist.yaml"), "--data-dir", data_dir])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: ") and "\n" not in err
    assert f"data_dir={data_dir!r} is not a directory" in err, err


def test_script_end_to_end():
    script = str(REPO / "scripts" / "gradcheck.py")
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # this checkout's jaxnn
    # 64-bit mode is off in a fresh process: the float32 gradient (with dropout masks from
    # the same key) is checked against a float64 reference computed under enable_x64.
    ok = subprocess.run([sys.executable, script, "--sizes", "3,5,2", "--activation", "relu",
                         "--loss", "mse", "--dtype", "float32", "--dropout", "0.3",
                         "--batch-norm"],
                        capture_output=True, text=True, timeout=300, env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "PASSED" in ok.stdout
    bad = subprocess.run([sys.executable, script, "--sizes", "3"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "Traceback" not in bad.stderr


# ----------------------------------------------------------------------------- shapes, tolerances


def test_transposed_leaf_of_the_right_size_is_a_shape_error():
    # A (4, 3) gradient for the (3, 4) leaf has the right size: it used to be reshaped and
    # show up as a value mismatch of pair/0.
    def transposed(p, x, s):
        g = _grad(p, x, s)
        return {**g, "pair": (g["pair"][0].T, g["pair"][1])}

    with pytest.raises(ValueError) as e:
        gradcheck.check_gradients(_fn, _params(), X, 1.5, grad_fn=transposed)
    msg = str(e.value)
    assert "'pair/0' has shape (4, 3) != expected (3, 4)" in msg
    assert "transposed" in msg and "\n" not in msg
    # a different size is the same error, without the hint
    with pytest.raises(ValueError, match=r"'head/v' has shape \(20,\) != expected \(5, 4\)"):
        gradcheck.check_gradients(
            _fn, _params(), X, 1.5,
            grad_fn=lambda p, x, s: {**_grad(p, x, s), "head": {"v": _grad(p, x, s)["head"][
                "v"].reshape(-1)}})


@pytest.mark.parametrize("rtol, fd_rtol, atol, want_rtol_fd, want_atol_fd", [
    (1e-7, 1e-5, 2e-9, 1e-5, 2e-7),  # float64 defaults: FD is looser, atol scales with it
    (1e-3, 1e-5, 2e-9, 1e-3, 2e-9),  # float32: rtol already looser than fd_rtol
])
def test_report_states_the_tolerances_of_the_finite_difference_comparison(
        rtol, fd_rtol, atol, want_rtol_fd, want_atol_fd):
    report = gradcheck.check_gradients(_fn, _params(), X, 1.5, grad_fn=_grad, rtol=rtol,
                                       fd_rtol=fd_rtol, atol=atol)
    assert report.rtol_fd == pytest.approx(want_rtol_fd)
    # never below what a central difference resolves: 8 ulp(value) / eps
    resolution = 8 * np.spacing(abs(report.value)) / report.eps
    assert report.fd_resolution == pytest.approx(resolution)
    assert report.atol_fd == pytest.approx(max(want_atol_fd, resolution))
    text = str(report)
    assert f"tolerances vs autodiff: rtol={rtol:g}, atol={atol:.2e}" in text
    assert f"tolerances vs FD: rtol={want_rtol_fd:g}" in text
    assert (f"atol={max(want_atol_fd, resolution):.2e} (the larger of atol x {want_rtol_fd:g} "
            f"/ {rtol:g} and the FD resolution {resolution:.2e}") in text
    # the rule is the one stated: an element passes when |g - ref| <= max(rtol |ref|, ...)
    assert "|g - ref| <= max(rtol |ref|, rtol floor max|leaf|, atol)" in text
    # without finite differences the report says so and states no FD tolerances
    text = str(gradcheck.check_gradients(_fn, _params(), X, 1.5, grad_fn=_grad, fd=False))
    assert "against autodiff (no finite differences)" in text and "vs FD" not in text


# ----------------------------------------------------------------------------- noise floor


def _bn_fn(p, x, v):
    """A bias feeding a batch normalization: its true gradient is exactly 0."""
    z = x @ p["w"] + p["b"][None, :]
    zc = z - jnp.mean(z, axis=0, keepdims=True)
    zn = zc / jnp.sqrt(jnp.mean(zc**2, axis=0, keepdims=True) + 1e-5)
    return jnp.sum(jnp.tanh(zn) * v) / x.shape[0]


def _bn_problem(dtype):
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(7), 3)
    params = {"w": jax.random.normal(k1, (5, 6), dtype), "b": jnp.full((6,), 0.3, dtype)}
    x = jax.random.normal(k2, (16, 5), dtype)
    v = jax.random.normal(k3, (16, 6), dtype)
    return params, x, v


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("bias_grad", ["autodiff_noise", "exact_zero"])
def test_zero_gradient_leaf_passes_with_atol_0_within_the_noise_floor(dtype, bias_grad):
    params, x, v = _bn_problem(jnp.dtype(dtype))
    ad = jax.grad(_bn_fn)

    def grad_fn(p, x, v):  # autodiff in the test dtype: rounding noise on b, or exactly 0
        g = ad(p, x, v)
        return g if bias_grad == "autodiff_noise" else {**g, "b": jnp.zeros_like(g["b"])}

    report = gradcheck.check_gradients(_bn_fn, params, x, v, grad_fn=grad_fn, atol=0.0)
    assert report.passed, str(report)
    b = {leaf.path: leaf for leaf in report.leaves}["b"]
    assert b.noise_elements == 6 and 0 < b.noise_floor < 1e-4
    assert "b: 6 element(s) equal to within rounding" in str(report)
    w = {leaf.path: leaf for leaf in report.leaves}["w"]
    assert w.noise_floor is None and w.noise_elements == 0  # passed on its own scale
    # without the floor, a leaf that is zero up to rounding cannot pass with atol=0
    strict = gradcheck.check_gradients(_bn_fn, params, x, v, grad_fn=grad_fn, atol=0.0,
                                       noise_factor=0.0)
    if bias_grad == "autodiff_noise" or dtype == "float32":
        assert strict.failed_leaves == ("b",), str(strict)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_noise_floor_does_not_excuse_real_errors(dtype):
    params, x, v = _bn_problem(jnp.dtype(dtype))
    ad = jax.grad(_bn_fn)
    # a wrong bias gradient well above rounding (the BN bias has true gradient 0)
    wrong_b = lambda p, x, v: {**ad(p, x, v), "b": jnp.full((6,), 1e-4, p["b"].dtype)}
    report = gradcheck.check_gradients(_bn_fn, params, x, v, grad_fn=wrong_b, atol=0.0)
    assert report.failed_leaves == ("b",)
    # a tiny but genuine gradient (a vanishing one, ~1e-12 here) returned as 0: its noise
    # floor is far below its size, so it fails
    tiny = {"w": params["w"], "u": jnp.full((3,), 1e-12, jnp.dtype(dtype))}
    fn = lambda p: jnp.sum(jnp.sin(p["w"])) + jnp.sum(p["u"] ** 2)
    zero_u = lambda p: {"w": jnp.cos(p["w"]), "u": jnp.zeros_like(p["u"])}
    report = gradcheck.check_gradients(fn, tiny, grad_fn=zero_u, atol=0.0, fd=False)
    assert report.failed_leaves == ("u",), str(report)
    (u,) = [leaf for leaf in report.leaves if leaf.path == "u"]
    assert u.noise_floor < 1e-13 and u.noise_elements == 0


def test_noise_factor_must_be_non_negative():
    with pytest.raises(ValueError, match="noise_factor must be finite and >= 0, got -1"):
        gradcheck.check_gradients(_fn, _params(), X, 1.0, noise_factor=-1)


def test_noise_floor_perturbs_each_leaf_in_its_own_dtype():
    # The noise floor runs jax.grad on perturbed copies of params: a bfloat16 leaf must stay
    # bfloat16 (numpy does not count bfloat16 as floating: it became the tested dtype).
    params = {"a": jnp.ones(4, jnp.bfloat16), "b": jnp.ones(3, jnp.float32)}
    out = gradcheck._perturbed(params, jnp.float32, np.random.default_rng(0))
    assert out["a"].dtype == jnp.bfloat16 and out["b"].dtype == jnp.float32
    assert not np.array_equal(np.asarray(out["b"]), np.ones(3, np.float32))  # perturbed


@pytest.mark.parametrize("fn, has_aux, message", [
    (lambda p, x: p["w"] * x, False, "got an array of shape (3,) of dtype float64"),
    (lambda p, x: ((p["w"] * x).sum(), 0.0), False, "fn returned a tuple, expected a scalar; "
                                                     "pass has_aux=True"),
    (lambda p, x: (p["w"] * x, {"n": 1}), True, "got an array of shape (3,)"),
    (lambda p, x: jnp.sum(p["w"] > 0), False, "got a scalar of dtype int"),
])
def test_a_non_scalar_fn_is_named(fn, has_aux, message):
    params, x = {"w": jnp.ones(3)}, jnp.arange(3.0)
    with pytest.raises(ValueError, match="check_gradients: fn") as e:
        gradcheck.check_gradients(fn, params, x, fd=True, has_aux=has_aux)
    assert message in str(e.value)
    # a scalar fn with value-dependent Python control flow is still checked (eagerly)
    branchy = lambda p, x: (p["w"] * x).sum() if p["w"][0] > 0 else 0.0
    assert gradcheck.check_gradients(branchy, params, x, fd=True).passed


@pytest.mark.parametrize("scale", [1e4, 1e6])
def test_finite_differences_pass_exact_gradients_of_large_parameters(scale):
    # A fixed step of 1e-6 is below the rounding of p +- eps for |p| >= 1e4 (ulp(1e6) is
    # 1.2e-10): the central difference was off by 2.5e-5 (1e4) to 1.8e-3 (1e6), failing
    # fd_rtol=1e-5 on autodiff itself.
    params = {"w": jnp.asarray(np.linspace(1.0, 2.0, 5) * scale, jnp.float64)}

    def fn(p):
        return jnp.sum(jnp.sin(p["w"] / scale))

    report = gradcheck.check_gradients(fn, params)
    assert report.passed, str(report)
    assert report.leaves[0].fd_max_rel_error < 1e-7
    # ... and a wrong gradient of such parameters is still caught
    bad = gradcheck.check_gradients(
        fn, params, grad_fn=lambda p: {"w": jax.grad(fn)(p)["w"].at[2].multiply(1.001)}
    )
    assert bad.failed_leaves == ("w",)


def test_numpy_float64_params_keep_float64_tolerances_with_64_bit_mode_off():
    # jnp.result_type canonicalized a numpy float64 leaf to float32 with x64 off, so a
    # float64 gradient wrong by 1e-5 in one element passed with rtol=1e-3.
    rng = np.random.default_rng(0)
    w, x = rng.normal(size=(4, 3)), rng.normal(size=(6, 4))

    def fn(p, xb):
        return jnp.sum(jnp.tanh(xb @ p["w"]) ** 2)

    def np_grad(p, xb, rel=0.0):  # a hand-written numpy gradient, in float64
        h = np.tanh(xb @ np.asarray(p["w"]))
        g = xb.T @ (2 * h * (1 - h**2))
        g[1, 2] *= 1 + rel
        return {"w": g}

    with jax.enable_x64(False):
        good = gradcheck.check_gradients(fn, {"w": w}, x, grad_fn=np_grad)
        bad = gradcheck.check_gradients(fn, {"w": w}, x,
                                         grad_fn=lambda p, xb: np_grad(p, xb, 1e-5))
        jax_grad = gradcheck.check_gradients(fn, {"w": w}, x, grad_fn=jax.grad(fn))
    assert good.passed and good.dtype == "float64" and good.rtol == 1e-7, str(good)
    assert bad.failed_leaves == ("w",)
    assert jax_grad.passed and jax_grad.dtype == "float64", str(jax_grad)


def test_python_float_leaf_does_not_lower_float64_tolerances():
    # A Python float leaf is weakly typed: jnp.result_type made it float32 with 64-bit mode
    # off, so it set float32 tolerances (rtol 1e-3) for float64 arrays and a float64
    # gradient wrong by 1e-5 in one element passed.
    params = {"a": 1.5, "v": np.linspace(-1.0, 1.0, 4)}

    def fn(p):
        return p["a"] ** 3 + jnp.sum(jnp.sin(p["v"]) * p["a"])

    def grad(p, rel=0.0):
        g = np.cos(np.asarray(p["v"])) * p["a"]
        g[2] *= 1 + rel
        return {"a": 3 * p["a"] ** 2 + float(np.sum(np.sin(p["v"]))), "v": g}

    with jax.enable_x64(False):
        good = gradcheck.check_gradients(fn, params, grad_fn=grad)
        bad = gradcheck.check_gradients(fn, params, grad_fn=lambda p: grad(p, 1e-5))
    assert good.passed and good.dtype == "float64" and good.rtol == 1e-7, str(good)
    assert bad.failed_leaves == ("v",), str(bad)


def test_params_with_only_empty_leaves_check_nothing_without_a_traceback():
    # Finite differences over zero elements raised IndexError from inside jax.
    def fn(p):
        return jnp.sum(p["e"]) + jnp.sum(p["f"] ** 2)

    params = {"e": np.zeros((0,)), "f": np.zeros((2, 0))}
    report = gradcheck.check_gradients(fn, params, grad_fn=jax.grad(fn))
    assert report.passed and [leaf.fd_elements for leaf in report.leaves] == [0, 0]


@pytest.mark.parametrize("leaf, shown", [
    (np.int32(2), "int32"), (jnp.arange(3, dtype=jnp.int16), "int16"), (2, "int"),
    (np.array([True]), "bool"),
])
def test_integer_params_leaf_is_named_with_where_it_belongs(leaf, shown):
    # jax.grad refuses integer inputs; the message said "got int32 int32 at 'n'".
    def fn(p, n=None):
        return jnp.sum(p["w"] ** 2)

    with pytest.raises(ValueError) as e:
        gradcheck.check_gradients(fn, {"w": np.ones(3), "n": leaf})
    msg = str(e.value)
    assert f"got {shown} at 'n'" in msg and "*args" in msg and "\n" not in msg, msg


def test_a_wrong_gradient_in_a_vanishing_first_layer_fails_by_default():
    # The default atol was rtol * floor * max|grad| over all leaves: a zeroed first-layer
    # gradient of ~1e-9 passed next to last-layer gradients of ~0.1. And with atol=0 the
    # correct gradient failed against finite differences, whose own rounding (~2e-10 here)
    # exceeds rtol * |g| for gradients of 1e-9..1e-7.
    cfg = mlp.MLPConfig(layer_sizes=(4,) + (16,) * 12 + (3,), hidden_activation="sigmoid",
                        initializer="lecun_normal")
    k = jax.random.key(0)
    x, y = jax.random.normal(k, (16, 4)), jax.random.randint(k, (16,), 0, 3)
    params, state = mlp.init(cfg, k)
    loss = "softmax_cross_entropy_with_integer_labels"
    fn = lambda p, x, y: mlp.make_loss_fn(cfg, loss)(p, state, x, y)  # noqa: E731
    vg = backprop.value_and_grad(cfg, loss)
    right = lambda p, x, y: vg(p, state, x, y)  # noqa: E731

    def zeroed(p, x, y):
        value, g = vg(p, state, x, y)
        g["layers"][0]["w"] = jnp.zeros_like(g["layers"][0]["w"])
        return value, g

    assert float(jnp.max(jnp.abs(right(params, x, y)[1]["layers"][0]["w"]))) < 1e-8
    report = gradcheck.check_gradients(fn, params, x, y, grad_fn=zeroed, has_aux=True)
    assert report.failed_leaves == ("layers/0/w",)
    report = gradcheck.check_gradients(fn, params, x, y, grad_fn=right, has_aux=True)
    assert report.passed, str(report)
    assert report.atol == 0.0 and report.atol_fd == report.fd_resolution > 0


def _sum_of_squares_with_wrong_jvp(scale):
    """``sum(w**2)`` whose autodiff derivative is ``2 w * scale(w)`` (1 where it is right)."""

    @jax.custom_jvp
    def f(w):
        return jnp.sum(w**2)

    @f.defjvp
    def _(primals, tangents):
        (w,), (t,) = primals, tangents
        return jnp.sum(w**2), jnp.sum(2 * w * scale(w) * t)

    return f


def test_the_report_points_at_the_worst_element_of_a_failed_leaf():
    # A researcher with one wrong entry in a weight gradient learned which leaf failed,
    # not where in it: the report now names the element farthest outside the tolerance.
    def one_bad(p, x, s):
        g = _grad(p, x, s)
        return {**g, "pair": (g["pair"][0].at[2, 1].multiply(1.01), g["pair"][1])}

    report = gradcheck.check_gradients(_fn, _params(), X, 1.5, grad_fn=one_bad)
    bad = {r.path: r for r in report.leaves}["pair/0"]
    good = _grad(_params(), X, 1.5)["pair"][0]
    assert not bad.passed and bad.worst_index == (2, 1)
    assert bad.worst_against == "autodiff"
    np.testing.assert_allclose(bad.worst_value, 1.01 * float(good[2, 1]), rtol=1e-12)
    np.testing.assert_allclose(bad.worst_reference, float(good[2, 1]), rtol=1e-12)
    assert "pair/0: worst element [2, 1]" in str(report)
    assert "head/v: worst" not in str(report)  # passed leaves are not listed

    # Without grad_fn the element is found against finite differences.
    planted = _sum_of_squares_with_wrong_jvp(
        lambda w: jnp.ones_like(w).at[1, 4].set(1.5))  # wrong derivative at [1, 4] only
    w = jnp.arange(1.0, 13.0).reshape(2, 6)
    report = gradcheck.check_gradients(lambda p: planted(p["w"]), {"w": w})
    leaf = report.leaves[0]
    assert not leaf.passed and leaf.worst_index == (1, 4) and leaf.worst_against == "fd"
    np.testing.assert_allclose(leaf.worst_value, 1.5 * 2 * 11.0)
    np.testing.assert_allclose(leaf.worst_reference, 2 * 11.0, rtol=1e-6)
    assert "w: worst element [1, 4]: 3.30e+01 against 2.20e+01 from finite differences" \
        in str(report)

    # A subsampled leaf: the worst of the sampled elements is mapped back to its place in
    # the leaf (the autodiff value and the true derivative there are the ones reported).
    growing = _sum_of_squares_with_wrong_jvp(
        lambda w: 1 + jnp.arange(w.size).reshape(w.shape) / w.size)  # worse further along
    w = 1 + jnp.arange(1200.0).reshape(40, 30) / 1200
    report = gradcheck.check_gradients(lambda p: growing(p["w"]), {"w": w},
                                       max_fd_elements=50)
    leaf = report.leaves[0]
    assert leaf.fd_elements == 50 and leaf.worst_against == "fd"
    i, j = leaf.worst_index
    flat = i * 30 + j
    np.testing.assert_allclose(leaf.worst_value, 2 * float(w[i, j]) * (1 + flat / 1200))
    np.testing.assert_allclose(leaf.worst_reference, 2 * float(w[i, j]), rtol=1e-6)
    assert flat > 1000  # the sample's worst is late in the leaf (50 of 1200 drawn)


def test_fn_computing_in_float32_is_checked_at_its_own_precision():
    # Research code that casts to float32 inside (a hard-coded dtype) gives float32 values
    # for the float64 params of the references: central differences with eps=1e-6 were off
    # by ~0.2 (ulp32(value) / eps), a correct gradient FAILED against "float64" finite
    # differences, and the report said nothing of fn's precision.
    def fn(p):
        q = p.astype(jnp.float32)
        return jnp.sum(jnp.sin(q) * q**2)

    def grad(p, rel=0.0):
        g = jnp.cos(p) * p**2 + 2 * p * jnp.sin(p)
        return g.at[2].multiply(1 + rel)

    p = jnp.linspace(0.5, 2.0, 5, dtype=jnp.float32)
    p64 = p.astype(jnp.float64)
    for params, grad_fn, rtol in ((p, jax.grad(fn), None), (p, None, None),
                                  (p64, grad, 1e-3)):
        report = gradcheck.check_gradients(fn, params, grad_fn=grad_fn, rtol=rtol)
        assert report.passed, str(report)
        assert report.value_dtype == "float32" and report.rtol_fd == 1e-3, str(report)
        assert report.eps == pytest.approx(float(jnp.finfo(jnp.float32).eps) ** (1 / 3))
        assert "fn returns a float32 value" in str(report)
    # Autodiff of this fn is float32-accurate too, which only the user knows: a float64
    # gradient keeps float64's rtol unless told, and the note says what to pass.
    strict = gradcheck.check_gradients(fn, p64, grad_fn=grad)
    assert strict.rtol == 1e-7 and "pass rtol=1e-3" in str(strict)
    bad = gradcheck.check_gradients(fn, p, grad_fn=lambda q: grad(q, 1e-2))
    assert bad.failed_leaves == ("<root>",) and bad.leaves[0].worst_index == (2,), str(bad)
    assert not bad.leaves[0].at_kink and "kink" not in str(bad), str(bad)
    # A smooth fn with a slightly wrong gradient: the one-sided differences differ by
    # ~h f'' at float32's step, more than the miss, but the gap halves with the step.
    near = gradcheck.check_gradients(fn, p, grad_fn=lambda q: grad(q, 1.5e-3))
    assert not near.passed and not near.leaves[0].at_kink and "kink" not in str(near)
    # Only the value cast to float32: its float64 gradient is judged at float64's rtol,
    # so a gradient 2e-4 off fails (it passed at a float32 rtol of 1e-3).
    def cast_last(q):
        return jnp.sum(jnp.sin(q) * q**2).astype(jnp.float32)

    for fd in (False, True):
        off = gradcheck.check_gradients(cast_last, p64, grad_fn=lambda q: grad(q) * (1 + 2e-4),
                                        fd=fd)
        assert not off.passed and off.rtol == 1e-7, str(off)
    # a float64 fn keeps the float64 defaults and says nothing of it
    report = gradcheck.check_gradients(lambda q: jnp.sum(jnp.sin(q) * q**2),
                                       p.astype(jnp.float64))
    assert report.value_dtype == "float64" and report.eps == 1e-6
    assert "fn returns" not in str(report)


def test_finite_differences_are_judged_at_their_measured_rounding():
    # The rounding of a central difference was estimated as ulp(value) / eps: right for a
    # loss of order 1, far too small where fn's terms cancel to a small value (a KL
    # divergence near its optimum: 1e-11 from terms of order 1) or where fn computes in
    # float32 inside and returns float64 (a float64 penalty added). jax.grad itself then
    # FAILED against finite differences 1e-4 (resp. 1400%) off. The rounding is measured
    # now, as the change of the differences when the step doubles, for failing leaves.
    with jax.enable_x64(True):
        t = jax.nn.softmax(jnp.array([0.3, -1.2, 2.0, 0.1, 0.5]))

        def kl(q):
            return jnp.sum(t * (jnp.log(t) - jax.nn.log_softmax(q["z"])))

        q = {"z": jnp.log(t) + 1e-5 * jnp.array([1.0, -1.0, 0.5, 0.2, -0.7])}
        x = jax.random.normal(jax.random.PRNGKey(0), (32, 5), jnp.float64)
        y = jax.random.normal(jax.random.PRNGKey(1), (32, 3), jnp.float64)
        w = {"w": jax.random.normal(jax.random.PRNGKey(2), (5, 3), jnp.float64)}

        def mixed(p, x, y):
            pred = x.astype(jnp.float32) @ p["w"].astype(jnp.float32)
            return jnp.mean((pred - y.astype(jnp.float32)) ** 2) + 0.01 * jnp.sum(p["w"] ** 2)

        for fn, params, args in ((kl, q, ()), (mixed, w, (x, y))):
            for grad_fn in (jax.grad(fn), None):
                report = gradcheck.check_gradients(fn, params, *args, grad_fn=grad_fn)
                assert report.passed, str(report)
                leaf = report.leaves[0]
                assert leaf.fd_noise_floor > report.fd_resolution, str(report)
                assert "vs FD" in str(report)  # the leaf's floor is reported

            def wrong(*a, fn=fn):
                return jax.tree.map(lambda g: g * 1.01, jax.grad(fn)(*a))

            assert not gradcheck.check_gradients(fn, params, *args, grad_fn=wrong).passed
        # Where the differences are accurate the measured floor stays far below an error:
        # autodiff through a custom derivative 1% off fails against them, with no grad_fn.
        @jax.custom_vjp
        def cube(v):
            return jnp.sum(v**3)

        cube.defvjp(lambda v: (cube(v), v), lambda v, g: (g * 3.03 * v**2,))
        report = gradcheck.check_gradients(cube, jnp.linspace(0.5, 2.0, 6))
        assert not report.passed and report.leaves[0].worst_against == "fd", str(report)


def test_a_failure_at_a_kink_is_named_as_a_kink():
    # relu at exactly 0: autodiff's 0 (a one-sided derivative) FAILED against the central
    # difference 0.5 with nothing but "0.00e+00 against 5.00e-01": the researcher was left
    # to guess whether the gradient or the point was wrong. The report now gives the two
    # one-sided differences and says the function is not differentiable there.
    def fn(p):
        return jnp.sum(jax.nn.relu(p["w"]) * jnp.arange(1.0, 5.0))

    report = gradcheck.check_gradients(fn, {"w": jnp.array([1.0, 0.0, -1.0, 2.0])})
    leaf = report.leaves[0]
    assert not leaf.passed and leaf.worst_index == (1,) and leaf.worst_against == "fd"
    np.testing.assert_allclose(leaf.worst_one_sided, (2.0, 0.0), atol=1e-6)
    assert "one-sided differences 2.00e+00 (forward) and 0.00e+00 (backward)" in str(report)
    assert "a kink" in str(report)
    # a wrong gradient at a smooth point gets no such note
    bad = gradcheck.check_gradients(
        _fn, _params(), X, 1.5,
        grad_fn=lambda p, x, s: {**_grad(p, x, s), "s": -_grad(p, x, s)["s"]})
    assert bad.failed_leaves == ("s",) and "kink" not in str(bad), str(bad)


@pytest.mark.parametrize("scale", [1e-6, 1.0, 1e6])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_wrong_value_fails_at_any_scale_of_fn(scale, dtype):
    # The value of a badly scaled fn (~1e-6) returned twice too large passed before: it was
    # judged against rtol * max(|value|, 1), an absolute 1e-3 in float32.
    w = jax.random.normal(jax.random.PRNGKey(3), (3, 4), jnp.dtype(dtype))
    x = X.astype(dtype)
    fn = lambda p, x: scale * jnp.sum(jnp.tanh(x @ p["w"]) ** 2)
    vg = jax.value_and_grad(fn)
    assert gradcheck.check_gradients(fn, {"w": w}, x, grad_fn=vg).passed
    for wrong in (2.0, 1.01):
        report = gradcheck.check_gradients(
            fn, {"w": w}, x, grad_fn=lambda p, x, c=wrong: (c * vg(p, x)[0], vg(p, x)[1]))
        assert not report.passed and not report.value_passed, str(report)
        assert report.failed_leaves == () and "FAILED: value" in str(report)


def test_a_value_that_cancels_in_float32_passes_within_its_rounding():
    # A confident cross-entropy: logsumexp(z) - z_max ~ 1e-3 from terms ~60, so float32
    # rounding alone is ~1e-5 of it -- far above rtol * |value|, and still correct.
    w = jax.random.normal(jax.random.PRNGKey(4), (3, 4), jnp.float32)
    x = X.astype(jnp.float32)

    def ce(p, x):
        z = 30.0 * x @ p["w"]
        return jnp.mean(jax.nn.logsumexp(z, axis=-1) - jnp.max(z, axis=-1))

    report = gradcheck.check_gradients(ce, {"w": w}, x, grad_fn=jax.value_and_grad(ce))
    assert report.passed and report.value_passed, str(report)
    assert report.value < 1e-2


def _tanh_fn(p, x):
    return jnp.sum(jnp.tanh(x @ p["w"] + p["b"][None, :]) ** 2)


_TANH_X = jax.random.normal(jax.random.PRNGKey(1), (5, 3), jnp.float32)


def _tanh_params(dtype):
    w = jax.random.normal(jax.random.PRNGKey(0), (3, 4), jnp.float32)
    return {"w": w.astype(dtype), "b": jnp.full((4,), 0.1, dtype)}


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
def test_a_correct_narrow_float_gradient_passes_by_default(dtype):
    # bfloat16 rounds to 2**-9 = 0.2%: with rtol 1e-3 (the float32 default) even the exact
    # gradient rounded to bfloat16 failed; its accuracy is now what autodiff reaches in it.
    params, x = _tanh_params(jnp.dtype(dtype)), _TANH_X
    report = gradcheck.check_gradients(_tanh_fn, params, x, grad_fn=jax.grad(_tanh_fn))
    assert report.passed, str(report)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_a_narrow_float_value_from_grad_fn_is_a_real_number(dtype):
    # jax.value_and_grad of a bfloat16 fn returns a bfloat16 value, whose numpy dtype kind is
    # "V" (not "f"): it was refused as "not one real number".
    params, x = _tanh_params(jnp.dtype(dtype)), _TANH_X.astype(dtype)
    vg = jax.value_and_grad(_tanh_fn)
    assert vg(params, x)[0].dtype == jnp.dtype(dtype)
    report = gradcheck.check_gradients(_tanh_fn, params, x, grad_fn=vg)
    assert report.value_error is not None and report.passed, str(report)


def test_a_sign_error_smaller_than_the_noise_floor_is_not_excused():
    # The bfloat16 noise floor here is ~0.2 (8 x autodiff's own error of ~0.025); w[1, 2] is
    # 0.164, so -0.164 passed as "both values at most the floor" -- with the rtol the
    # docs advise for bfloat16.
    params, x = _tanh_params(jnp.bfloat16), _TANH_X

    def flipped(p, x):
        g = jax.grad(_tanh_fn)(p, x)
        return {**g, "w": g["w"].at[1, 2].multiply(-1)}

    report = gradcheck.check_gradients(_tanh_fn, params, x, grad_fn=flipped, rtol=5e-2)
    assert report.failed_leaves == ("w",), str(report)
    (w,) = [leaf for leaf in report.leaves if leaf.path == "w"]
    assert w.worst_index == (1, 2) and 0.1 < w.noise_floor < 0.33


def test_a_gradient_narrower_than_its_params_fails_whatever_its_values():
    # A hand-written gradient returned in float16 for float32 params is within the float32
    # rtol of 1e-3 of the reference, and PASSED; it loses the params' precision (jax.grad
    # returns their dtype). A wider one (float64 for float32) is no loss.
    def fn(p):
        return jnp.sum(jnp.sin(p["w"]) * p["b"])

    params = {"w": jnp.linspace(0.1, 1.0, 4, dtype=jnp.float32), "b": jnp.float32(2.0)}

    def cast(dtype):
        return lambda p: jax.tree.map(lambda g: g.astype(dtype), jax.grad(fn)(p))

    report = gradcheck.check_gradients(fn, params, grad_fn=cast(jnp.float16))
    assert report.failed_leaves == ("b", "w"), str(report)
    assert report.leaves[1].narrow_dtype == "float16 for float32 params"
    assert report.leaves[1].max_rel_error <= report.rtol  # the values alone would pass
    assert "w: grad_fn returns float16 for float32 params: narrower than its params" in str(
        report)
    for ok in (jax.grad(fn), cast(jnp.float64)):
        with jax.enable_x64(True):
            report = gradcheck.check_gradients(fn, params, grad_fn=ok)
        assert report.passed and not any(leaf.narrow_dtype for leaf in report.leaves), str(
            report)
