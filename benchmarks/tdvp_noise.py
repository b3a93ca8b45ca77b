"""Accuracy study: how Monte Carlo noise in S and F spoils the TDVP time derivative, measured by full sums.

Along a full-sum TDVP trajectory of the TFIM quench from |→⟩ (the state of `runs/tfim_quench.py`, NetKet's
`TDVP` with RK4 and a smooth pseudo-inverse), at each save point the time derivative θ̇ is computed

* exactly: least squares on the full sum, the smallest reachable residual (`dynamics.tdvp.least_squares_residual`);
* from N_s samples, i.i.d. from |ψ|² (drawn from the exact distribution, so only the finite-sample noise
  enters) and from NetKet's Metropolis sampler (chains kept warm along the trajectory, so autocorrelation
  enters too), under each regularisation of `--variants`: the smooth pseudo-inverse
  σ⁻¹ → σ⁻¹ / (1 + (ε σ_max/σ)⁶) ("pinv:ε") and the Schmitt–Heyl filter, which also damps each eigenmode k by
  1 / (1 + (ε_SNR/SNR_k)⁶), SNR_k = |ρ_k|√N_s / std_x ρ_k(x), ρ_k(x) = (V† Ō*(x))_k ΔE(x) ("snr:ε:ε_SNR",
  NetKet's `TDVPSchmitt`, Schmitt & Heyl PRL 125, 100503 (2020)).

Each θ̇ is scored by the exact TDVP residual (full sums over all 2^L configurations)

    r²(θ̇) = ⟨|Σ_k θ̇_k Ō_k + i ΔE|²⟩ / Var H = (θ̇†Sθ̇ + 2 Re(i θ̇†F) + Var H) / Var H,

the squared distance between the variational and the exact time derivative relative to ‖(H − ⟨H⟩)ψ‖²:
the infidelity an Euler step of Δt adds is ≈ Δt² Var H · r². The table gives, per variant, the mean r² over
`--repeats` independent sample sets and the r² of their average θ̇ (the bias of the variant; the mean
minus this is the sample noise, which partly averages out over many steps, the bias does not).

    python benchmarks/tdvp_noise.py --L 12 --T 1.5                  # writes benchmarks/out/tdvp_noise.json
    python benchmarks/tdvp_noise.py --L 8 --T 0.2 --quick --out /tmp/n.json
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys
import time
from pathlib import Path

import _common  # noqa: F401  (first: switches NetKet's sharding off before NetKet loads)
import jax
import jax.numpy as jnp
import netket as nk
import netket.experimental as nkx
import numpy as np
from _common import machine, table, write_json

from ansatze.choice import DTYPES, SYMMETRIES, AnsatzChoice, build_ansatz
from dynamics.tdvp import least_squares_residual
from hamiltonians import tfim
from nqs.local_energy import LocalEnergy
from nqs.vmc import VMCSettings, ground_state

DEFAULT_VARIANTS = "pinv:1e-8,pinv:1e-6,pinv:1e-4,pinv:1e-3,snr:1e-8:1,snr:1e-6:1,snr:1e-8:4"


def full_sum_data(vstate, hamiltonian) -> dict[str, np.ndarray]:
    """Probabilities, local energies and centred Jacobian of `vstate` over all configurations; the exact
    S, F and Var H (holomorphic parameters)."""
    x = jnp.asarray(vstate.hilbert.all_states())

    def logpsi(params, xx):
        return vstate._apply_fun({"params": params, **vstate.model_state}, xx)

    local_energy = LocalEnergy.for_state(vstate, hamiltonian)
    log_x, eloc = jax.jit(functools.partial(local_energy, logpsi))(vstate.parameters, x)
    jac = nk.jax.jacobian(vstate._apply_fun, vstate.parameters, x, vstate.model_state, mode="holomorphic",
                          dense=True, center=False)
    log_p = 2 * np.asarray(log_x.real)
    p = np.exp(log_p - log_p.max())
    p /= p.sum()
    jac, eloc = np.asarray(jac), np.asarray(eloc)
    o_bar = jac - p @ jac
    delta_e = eloc - p @ eloc
    s = (o_bar.conj().T * p) @ o_bar
    f = (o_bar.conj().T * p) @ delta_e
    var = float(p @ np.abs(delta_e) ** 2)
    return {"p": p, "jac": jac, "eloc": eloc, "o_bar": o_bar, "delta_e": delta_e, "S": s, "F": f, "var": var}


def residual(data: dict, theta_dot: np.ndarray) -> float:
    """The exact r²(θ̇) of the module docstring."""
    quad = np.real(theta_dot.conj() @ data["S"] @ theta_dot)
    cross = 2 * np.real(1j * theta_dot.conj() @ data["F"])
    return float((quad + cross + data["var"]) / data["var"])


def sampled_theta_dots(data: dict, index: np.ndarray, variants: list[tuple]) -> list[np.ndarray]:
    """θ̇ from the configurations `index` (into the full list) for each regularisation variant."""
    o = data["jac"][index]
    o = o - o.mean(axis=0)
    e = data["eloc"][index]
    delta_e = e - e.mean()
    n = len(index)
    s = o.conj().T @ o / n
    ev, v = np.linalg.eigh(s)
    rho_x = (o.conj() @ v.conj()) * delta_e[:, None]  # ρ_k(x) = (V† Ō*(x))_k ΔE(x)
    rho = rho_x.mean(axis=0)
    snr = np.abs(rho) * np.sqrt(n) / np.maximum(rho_x.std(axis=0), 1e-300)
    rel = np.abs(ev / ev[-1])
    ev_inv = np.where(rel > 1e-12, 1.0 / ev, 0.0)
    out = []
    for kind, eps, eps_snr in variants:
        filt = 1.0 / (1.0 + (eps / rel) ** 6)
        if kind == "snr":
            filt = filt / (1.0 + (eps_snr / snr) ** 6)
        out.append(v @ (ev_inv * filt * (-1j) * rho))
    return out


def parse_variants(text: str) -> list[tuple]:
    variants = []
    for item in text.split(","):
        parts = item.split(":")
        if parts[0] == "pinv" and len(parts) == 2:
            variants.append(("pinv", float(parts[1]), 0.0))
        elif parts[0] == "snr" and len(parts) == 3:
            variants.append(("snr", float(parts[1]), float(parts[2])))
        else:
            raise ValueError(f"variant {item!r}: use pinv:EPS or snr:EPS:EPS_SNR")
    return variants


def parse_options(argv: list[str] | None) -> argparse.Namespace:
    """The study's options; the ansatz is NetKet's complex RBM, even under the spin flip (the Jacobian is
    holomorphic)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/tdvp_noise.json"), help="JSON output")
    parser.add_argument("--quick", action="store_true", help="small configuration")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--L", type=int, default=12)
    parser.add_argument("--h", type=float, default=0.5)
    parser.add_argument("--h0-steps", type=int, default=100, help="VMC steps fitting |→⟩")
    parser.add_argument("--fit-samples", type=int, default=0,
                        help="samples of the |→⟩ fit (0: full-sum SR; > 0: minSR, much cheaper at L = 16)")
    parser.add_argument("--sample-sizes", default="8192,32768", help="comma-separated N_s")
    parser.add_argument("--repeats", type=int, default=4, help="independent sample sets per N_s")
    parser.add_argument("--variants", default=DEFAULT_VARIANTS)
    parser.add_argument("--chains", type=int, default=256, help="Metropolis chains (0: no Metropolis row)")
    parser.add_argument("--T", type=float, default=1.5, help="final time")
    parser.add_argument("--dt", type=float, default=0.01, help="RK4 time step")
    parser.add_argument("--n-save", type=int, default=7, help="save points in [0, T], both ends included")
    parser.add_argument("--rtol-smooth", type=float, default=1e-8,
                        help="smooth pseudo-inverse cut-off of the trajectory relative to the largest QGT eigenvalue")
    parser.add_argument("--alpha", type=int, default=32, help="RBM hidden units per site")
    parser.add_argument("--symmetry", choices=SYMMETRIES, default="translations", help="RBMSymm group")
    parser.add_argument("--dtype", choices=DTYPES, default="float64", help="RBM parameter precision")
    return parser.parse_args(argv)


def fit_product_start(model, args: argparse.Namespace):
    """Variables of `model` fitted to |→⟩, the ground state of −Σ X, by `--h0-steps` steps of full-sum SR
    (``--fit-samples 0``) or minSR with at most 2048 samples."""
    full_sum = args.fit_samples == 0
    n_samples = 0 if full_sum else min(max(args.fit_samples, 1024), 2048)
    settings = VMCSettings(n_steps=args.h0_steps, n_samples=n_samples, learning_rate=0.02,
                           solver="sr" if full_sum else "minsr", lr_schedule="cosine", lr_final=0.002,
                           diag_shift=1e-3 if full_sum else 1e-4, n_samples_final=n_samples, holomorphic=True)
    field_only = dataclasses.replace(tfim(args.L, J=0.0, h=1.0), observables={})
    return ground_state(field_only, model, settings, seed=args.seed, progress=not args.quiet).state.variables


def main(argv: list[str] | None = None) -> dict:
    args = parse_options(argv)
    if args.quick:
        args.h0_steps, args.repeats, args.alpha = 20, 2, 2
    if args.L > 16:
        raise ValueError(f"full sums over 2^L configurations: L ≤ 16, got {args.L}")
    variants = parse_variants(args.variants)
    names = [":".join(str(v) for v in var if v != 0.0) for var in variants]
    sizes = [int(s) for s in args.sample_sizes.split(",")]

    system = tfim(args.L, h=args.h)
    choice = AnsatzChoice(kind="rbm", alpha=args.alpha, symmetry=args.symmetry, spin_flip=True, dtype=args.dtype)
    model = build_ansatz(choice, system)
    start = fit_product_start(model, args)
    vstate = nk.vqs.FullSumState(system.hilbert, model, seed=args.seed)
    vstate.variables = start
    metropolis = None
    if args.chains:
        metropolis = nk.vqs.MCState(nk.sampler.MetropolisLocal(system.hilbert, n_chains=args.chains), model,
                                    n_samples=max(sizes), seed=args.seed, sampler_seed=args.seed + 1)
        metropolis.variables = start
    qgt = functools.partial(nk.optimizer.qgt.QGTJacobianDense, holomorphic=True)
    solver = functools.partial(nk.optimizer.solver.pinv_smooth, rtol=1e-12, rtol_smooth=args.rtol_smooth)
    driver = nkx.TDVP(system.hamiltonian, vstate, nkx.dynamics.RK4(dt=args.dt), qgt=qgt, linear_solver=solver)
    rng = np.random.default_rng(args.seed)
    rows, t_wall = [], time.perf_counter()

    def diagnose(t: float) -> None:
        data = full_sum_data(vstate, system.hamiltonian)
        row = {"t": t, "var_H": data["var"], "r2_exact": least_squares_residual(data["jac"], data["p"],
                                                                                data["delta_e"])[0],
               "r2_trajectory": residual(data, np.concatenate([np.ravel(a) for a in jax.tree_util.tree_leaves(
                   driver.ode())]))}
        sources = [(f"iid{n}", n) for n in sizes] + ([("metropolis", max(sizes))] if metropolis else [])
        for source, n in sources:
            sets = []
            for _ in range(args.repeats):
                if source == "metropolis":
                    metropolis.parameters = vstate.parameters
                    metropolis.reset()
                    index = np.asarray(system.hilbert.states_to_numbers(metropolis.samples.reshape(-1, args.L)))
                else:
                    index = rng.choice(len(data["p"]), size=n, p=data["p"])
                sets.append(sampled_theta_dots(data, index, variants))
            for k, name in enumerate(names):
                dots = [s[k] for s in sets]
                row[f"{source} {name} mean"] = float(np.mean([residual(data, d) for d in dots]))
                row[f"{source} {name} bias"] = residual(data, np.mean(dots, axis=0))
        rows.append(row)
        # written at every save point: an interrupted study keeps its rows
        write_json(args.out, {"config": vars(args), "variants": names, "rows": rows, "machine": machine(),
                              "wall_s": time.perf_counter() - t_wall})
        print(f"t = {t:.3f}: Var H {row['var_H']:.3f}, r² exact {row['r2_exact']:.2e}, trajectory "
              f"{row['r2_trajectory']:.2e}  ({time.perf_counter() - t_wall:.0f} s)", flush=True)
        for source, _ in sources:
            print("   " + source.ljust(10) + "  ".join(
                f"{name} {row[f'{source} {name} mean']:.1e}/{row[f'{source} {name} bias']:.1e}" for name in names),
                flush=True)

    times = np.linspace(0.0, args.T, args.n_save)
    diagnose(0.0)

    def on_stop(t, log_data, drv):
        if np.isclose(times, t).any() and t > 0:
            diagnose(float(t))
        return True

    driver.run(args.T, tstops=times[1:], callback=on_stop, show_progress=not args.quiet)
    payload = json.loads(Path(args.out).read_text())
    columns = ["t", "r2_exact", "r2_trajectory"] + [f"iid{sizes[0]} {n} mean" for n in names]
    print(table([[row[c] for c in columns] for row in rows], columns))
    return payload


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
