"""Recipes: how a result file records what rebuilds its System and its ansatz (`nqs.results.load_state`).

A System is rebuilt by calling its builder (``System.builder``, a dotted name such as ``hamiltonians.heisenberg``)
with its stored arguments (``System.params``). An ansatz is a Flax module, a frozen dataclass: its recipe is the
dotted name of its class and the fields that differ from the class defaults, encoded as JSON,

    {"class": "ansatze.transformer.ARTransformer", "fields": {"layers": 1, "features": 16, "hilbert": {"hilbert":
     "system"}, "constraint": {"constraint": "system"}, "param_dtype": {"dtype": "float64"}, ...}}

with the system's Hilbert space (or its sector space, `System.sector_hilbert()`), constraint and token map (gauge
blocks) referenced, not copied, nested modules (the
base model of `Symmetrized`, String States) as nested recipes, arrays and dtypes tagged, and module-level functions by
name.
A model whose fields cannot be encoded (e.g. a closure as initializer) has no recipe: its parameters still load
(`nqs.results.load_parameters`), `load_state` says why it cannot rebuild it.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import netket as nk
import numpy as np
from netket.utils import HashableArray

from nqs.system import System
from nqs.tokens import TokenMap


class NoRecipe(ValueError):
    """A System or model that a result file cannot record how to rebuild."""


def _dotted(obj: Any) -> str:
    if not hasattr(obj, "__qualname__"):  # a callable instance (e.g. NetKet's PermutationGroup): no name to import
        raise NoRecipe(f"a {type(obj).__name__} instance is not importable by name")
    name = f"{obj.__module__}.{obj.__qualname__}"
    if "<locals>" in name:
        raise NoRecipe(f"{name} is not importable by name")
    return name


def _import(dotted: str) -> Any:
    module, _, name = dotted.rpartition(".")
    try:
        owner = importlib.import_module(module)
    except ImportError:  # a nested qualname: import the outer part and walk the attributes
        outer, _, inner = module.rpartition(".")
        owner = getattr(importlib.import_module(outer), inner)
    return getattr(owner, name)


def _encode(value: Any, system: System | None) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if system is not None and (value is system.hilbert or value == system.hilbert):
        return {"hilbert": "system"}
    if isinstance(value, nk.hilbert.DiscreteHilbert) and _is_sector_space(value, system):
        return {"hilbert": "sector"}
    if isinstance(value, nk.hilbert.Fock) and not value.constrained:
        return {"fock": [int(value.n_max), int(value.size)]}
    if isinstance(value, nk.hilbert.Spin) and not value.constrained:
        return {"spin": [(int(value.local_size) - 1) / 2, int(value.size)]}
    if system is not None and system.constraint is not None and value == system.constraint:
        return {"constraint": "system"}
    if system is not None and isinstance(value, TokenMap) and value == system.token_map:
        return {"tokens": "system"}
    if isinstance(value, nn.Module):
        return {"module": module_recipe(value, system)}
    if isinstance(value, HashableArray):
        return {"hashable_array": np.asarray(value).tolist(), "dtype": str(np.asarray(value).dtype)}
    if isinstance(value, np.ndarray):
        return {"ndarray": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, (tuple, list)):
        return {"tuple": [_encode(v, system) for v in value]}
    if isinstance(value, Mapping):
        return {"dict": {str(k): _encode(v, system) for k, v in value.items()}}
    if isinstance(value, (type, np.dtype)):
        try:
            return {"dtype": np.dtype(value).name}
        except TypeError:
            pass
    if callable(value):
        return {"callable": _dotted(value)}
    raise NoRecipe(f"cannot record a value of type {type(value).__name__}")


def _is_sector_space(hilbert: nk.hilbert.DiscreteHilbert, system: System | None) -> bool:
    """Whether `hilbert` is the system's constrained space (`System.sector_hilbert()`, e.g. a Slater determinant's)."""
    if system is None or system.constraint is None:
        return False
    try:
        return hilbert == system.sector_hilbert()
    except TypeError:  # spaces NetKet cannot constrain (gauge blocks)
        return False


def _decode(value: Any, system: System) -> Any:
    if not isinstance(value, dict):
        return value
    tag, payload = next(iter(value.items()))
    if tag == "hilbert":
        return system.sector_hilbert() if payload == "sector" else system.hilbert
    if tag == "fock":
        return nk.hilbert.Fock(n_max=payload[0], N=payload[1])
    if tag == "spin":
        return nk.hilbert.Spin(payload[0], N=payload[1])
    if tag == "constraint":
        return system.constraint
    if tag == "tokens":
        return system.token_map
    if tag == "module":
        return build_module(payload, system)
    if tag == "hashable_array":
        return HashableArray(np.asarray(payload, dtype=value["dtype"]))
    if tag == "ndarray":
        return np.asarray(payload, dtype=value["dtype"])
    if tag == "tuple":
        return tuple(_decode(v, system) for v in payload)
    if tag == "dict":
        return {k: _decode(v, system) for k, v in payload.items()}
    if tag == "dtype":
        return np.dtype(payload).type
    if tag == "callable":
        return _import(payload)
    raise NoRecipe(f"unknown recipe tag {tag!r}")


def module_recipe(module: nn.Module, system: System | None = None) -> dict:
    """{"class": dotted name, "fields": the fields that differ from the class defaults, encoded} (module docstring).

    Raises:
        NoRecipe: a field cannot be encoded.
    """
    fields = {}
    for field in dataclasses.fields(module):
        if field.name in ("parent", "name"):
            continue
        value = getattr(module, field.name)
        if field.default is not dataclasses.MISSING and (value is field.default or _same(value, field.default)):
            continue
        fields[field.name] = _encode(value, system)
    return {"class": _dotted(type(module)), "fields": fields}


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (ValueError, TypeError):  # arrays and other values without a truth value
        return False


def build_module(recipe: Mapping[str, Any], system: System) -> nn.Module:
    """The Flax module of a `module_recipe`, on the system's Hilbert space and constraint."""
    cls = _import(recipe["class"])
    return cls(**{name: _decode(value, system) for name, value in recipe["fields"].items()})


def describe_ansatz(vstate: Any, ansatz: Mapping[str, Any] | None = None, system: System | None = None) -> dict:
    """The /ansatz attributes of a run: `ansatz` if given, else the model's own ``describe()`` (our ansätze),
    else its class name and the scalar fields of its Flax dataclass (NetKet models, e.g. RBM alpha and
    param_dtype); always with ``n_parameters`` and the rebuilding ``recipe`` (None when the model has none)."""
    model = vstate.model
    describe = getattr(model, "describe", None)
    if ansatz is not None:
        info = dict(ansatz)
    elif callable(describe):
        info = dict(describe())
    else:
        info = {"name": type(model).__name__}
        for field in dataclasses.fields(model) if dataclasses.is_dataclass(model) else ():
            value = getattr(model, field.name, None)
            if field.name not in ("parent", "name") and isinstance(value, (bool, int, float, str)):
                info[field.name] = value
            elif field.name.endswith("dtype") and value is not None:
                info[field.name] = str(np.dtype(value))
    info.setdefault("name", type(model).__name__)
    info["n_parameters"] = int(vstate.n_parameters)
    try:
        info["recipe"] = module_recipe(model, system) if isinstance(model, nn.Module) else None
    except NoRecipe:
        info["recipe"] = None
    return info


def rebuild_system(builder: str, params: Mapping[str, Any]) -> System:
    """The System of `builder` (a dotted name) called with its stored arguments `params`.

    Raises:
        NoRecipe: a composed builder ("a+b", e.g. jumps added to a closed system) or one that does not import.
    """
    if "+" in builder:
        raise NoRecipe(f"the system was composed by {builder!r}; rebuild it by calling those builders")
    try:
        function = _import(builder)
    except (ImportError, AttributeError) as err:
        raise NoRecipe(f"the builder {builder!r} does not import ({err})") from err
    accepted = inspect.signature(function).parameters
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise NoRecipe(f"the builder {builder!r} takes no arguments {unknown}")
    return function(**params)
