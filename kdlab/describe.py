"""What identifies an objective in a run's fingerprint: a description that changes whenever its behaviour can.

A finished run is found again by its fingerprint (kdlab.train.run_fingerprint), so the objective's description
must change whenever what the objective computes can change, and be the same in every process (no memory
addresses). kdlab's own objectives describe themselves by their settings (their `__repr__`, tested against
every setting). Anything else is described by what determines its behaviour:

- a function or lambda: its code (nested functions included), constants, defaults, closure values, and the
  current value of every global name it reads (a notebook global such as `SMOOTH`, a helper function it calls,
  described the same way, so editing the helper changes the description);
- a bound method: the object it is bound to and the function;
- `functools.partial`: the function and its arguments;
- an object of another class (an `nn.Module` loss, say): its class (the code of its methods) and its attributes,
  parameters and buffers.

What cannot be described completely (an object whose value has no stable description and no attributes to
read, such as a random generator) raises `Undescribable`, saying what; callers then either
take a name from the user (`objective_id=`, the user's promise that the name changes whenever the objective
does) or do not cache the run. Never a guess.
"""
import functools
import hashlib
import inspect
import re
import types

import torch

_PLAIN = (type(None), bool, int, float, complex, str, bytes)
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


class Undescribable(TypeError):
    """kdlab cannot describe this object completely, so it cannot tell whether a saved run used the same one."""


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _is_kdlab(obj) -> bool:
    return type(obj).__module__.split(".")[0] == "kdlab"


def _code(code: types.CodeType, seen) -> str:
    """A code object without its address: bytecode, names, and constants (nested code objects recursively)."""
    consts = tuple(_code(c, seen) if isinstance(c, types.CodeType) else _value(c, seen) for c in code.co_consts)
    return repr((code.co_name, code.co_code, code.co_names, code.co_varnames, consts))


def _globals_read(code: types.CodeType):
    names = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            names |= _globals_read(c)
    return names


def _function(f, seen) -> str:
    g = f.__globals__
    read = {n: _value(g[n], seen) for n in sorted(_globals_read(f.__code__)) if n in g}
    closure = [_value(c.cell_contents, seen) for c in f.__closure__ or ()]
    parts = (_code(f.__code__, seen), _value(f.__defaults__, seen), _value(f.__kwdefaults__, seen), closure, read)
    return f"function {f.__module__}.{f.__qualname__} [{_digest(repr(parts))}]"


def _class(cls, seen) -> str:
    """A class by its name and the code of its own methods (and of its bases outside the standard library)."""
    if cls.__module__.split(".")[0] in ("builtins", "torch", "kdlab", "functools", "abc", "typing"):
        return f"{cls.__module__}.{cls.__qualname__}"
    parts = []
    for klass in cls.__mro__:
        if klass.__module__.split(".")[0] in ("builtins", "torch", "abc", "typing"):
            continue
        for name, member in sorted(vars(klass).items()):
            member = member.__func__ if isinstance(member, (staticmethod, classmethod)) else member
            if inspect.isfunction(member):
                parts.append((klass.__qualname__, name, _code(member.__code__, seen)))
            elif isinstance(member, property):
                parts.append((klass.__qualname__, name, _value(member.fget, seen)))
            elif not name.startswith("__"):
                parts.append((klass.__qualname__, name, _value(member, seen)))
    return f"{cls.__module__}.{cls.__qualname__} [{_digest(repr(parts))}]"


def _tensor(t: torch.Tensor) -> str:
    data = t.detach().to("cpu").contiguous()
    h = hashlib.sha256(data.reshape(-1).view(torch.uint8).numpy().tobytes()).hexdigest()[:12]
    return f"tensor({list(data.shape)}, {data.dtype}, {h})"


def _module(m: torch.nn.Module, seen) -> str:
    settings = {k: _value(v, seen) for k, v in sorted(vars(m).items())
                if not k.startswith("_") and k != "training"}
    state = {k: _tensor(v) for k, v in sorted(m.state_dict().items())}
    children = {k: _value(c, seen) for k, c in m.named_children()}
    return f"{_class(type(m), seen)}(settings={settings}, state={state}, children={children})"


_STDLIB_REPR = ("builtins", "datetime", "decimal", "fractions", "pathlib", "enum")


def _value(v, seen=frozenset()) -> str:
    if isinstance(v, _PLAIN):
        return repr(v)
    if id(v) in seen:  # a reference cycle (a function reading itself, an object holding itself)
        return f"(recursive {type(v).__qualname__})"
    seen = seen | {id(v)}
    if isinstance(v, (tuple, list)):
        return f"{type(v).__name__}({', '.join(_value(x, seen) for x in v)})"
    if isinstance(v, (set, frozenset)):
        return f"{type(v).__name__}({', '.join(sorted(_value(x, seen) for x in v))})"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_value(k, seen)}: {_value(x, seen)}" for k, x in
                               sorted(v.items(), key=lambda kv: repr(kv[0]))) + "}"
    if isinstance(v, torch.Tensor):
        return _tensor(v)
    if isinstance(v, (torch.dtype, torch.device)):
        return repr(v)
    if isinstance(v, types.ModuleType):
        return f"module {v.__name__}"
    if inspect.isfunction(v):
        return _function(v, seen)
    if inspect.ismethod(v):
        return f"method {v.__func__.__qualname__} of {_value(v.__self__, seen)} [{_function(v.__func__, seen)}]"
    if isinstance(v, functools.partial):
        return f"partial({_value(v.func, seen)}, args={_value(v.args, seen)}, kwargs={_value(v.keywords, seen)})"
    if isinstance(v, (types.BuiltinFunctionType, types.MethodWrapperType, types.WrapperDescriptorType)):
        return f"builtin {getattr(v, '__module__', None)}.{getattr(v, '__qualname__', getattr(v, '__name__', '?'))}"
    if isinstance(v, type):
        return f"class {_class(v, seen)}"
    text = repr(v)
    if _is_kdlab(v) and not _ADDRESS.search(text):
        return text  # kdlab's own objects describe themselves by their settings
    if isinstance(v, torch.nn.Module):
        return _module(v, seen)
    if type(v).__module__.split(".")[0] == "numpy" and hasattr(v, "tolist"):
        return f"numpy({v.tolist()!r}, {v.dtype})"
    if type(v).__module__.split(".")[0] in _STDLIB_REPR and not _ADDRESS.search(text):
        return text  # dates, decimals, paths, enums: their repr is their value
    if hasattr(v, "__dict__"):
        # any other object, whatever its repr says (a repr may leave settings out): its class and its attributes
        return f"{_class(type(v), seen)}({ {k: _value(x, seen) for k, x in sorted(vars(v).items())} })"
    raise Undescribable(f"{_ADDRESS.sub('', text)[:80]} (a {type(v).__module__}.{type(v).__qualname__}) has no "
                        f"attributes kdlab can read, and its repr may leave its settings out")


def describe(objective) -> str:
    """A description of `objective` that changes whenever its behaviour can, the same in every process.

    Raises `Undescribable` when some part of it cannot be described (the message says which)."""
    return _value(objective)
