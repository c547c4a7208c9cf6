"""Auxiliary heads on any layer: deep supervision with forward hooks.

:func:`attach_heads` puts a head on the output of any named submodule of any ``nn.Module``
(the names of ``backbone.named_modules()``, e.g. ``"features.3"``) and returns an
:class:`AuxHeads` model whose forward returns ``{"main": ..., "aux1": ..., ...}``, ready for
an :class:`~auxlab.Objective`. :func:`strip_aux` gives back the main-only model for inference
and export. This is how deeply-supervised nets (Lee et al., AISTATS 2015) and GoogLeNet's
auxiliary classifiers (Szegedy et al., CVPR 2015) are trained.

A head is applied *inside* the forward hook, to the tapped layer's output as it leaves the
layer, so it sees exactly that output even when a later layer modifies the tensor in place.
If a later in-place operation (``ReLU(inplace=True)``) does modify it, the backward of the
head could be wrong, so :class:`AuxHeads` raises an error after the forward that names the
layer; pass ``clone=True`` or tap the layer after the in-place operation.
"""

from __future__ import annotations

import copy as _copy
import difflib
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

__all__ = ["AuxHeads", "attach_heads", "strip_aux"]


def _describe(x: Any) -> str:
    """A short shape description of a tensor, or of a tuple/list/dict of tensors."""
    if isinstance(x, torch.Tensor):
        return str(tuple(x.shape))
    if isinstance(x, (tuple, list)):
        return "(" + ", ".join(_describe(v) for v in x) + ("," if len(x) == 1 else "") + ")"
    if isinstance(x, Mapping):
        return "{" + ", ".join(f"{k!r}: {_describe(v)}" for k, v in x.items()) + "}"
    return type(x).__name__


def _expected_input(head: Any) -> str:
    """What input a head expects, read from the head or from its first sized layer."""
    declared = getattr(head, "expected_input_shape", None)
    if declared is not None:
        return str(declared)
    if not isinstance(head, nn.Module):
        return "an input it accepts"
    for m in head.modules():
        if isinstance(m, (nn.Linear, nn.Bilinear)) and not isinstance(m, nn.LazyLinear):
            return f"(*, {m.in_features}) (its first sized layer is {m})"
        if isinstance(m, nn.modules.conv._ConvNd) and not isinstance(
            m, nn.modules.lazy.LazyModuleMixin
        ):
            dims = ", ".join(["N", str(m.in_channels)] + ["·"] * len(m.kernel_size))
            return f"({dims}) (its first sized layer is {m})"
        if isinstance(m, nn.modules.batchnorm._NormBase) and m.num_features:
            return f"(N, {m.num_features}, ...) (its first sized layer is {m})"
        if isinstance(m, nn.LayerNorm):
            return f"(*, {', '.join(map(str, m.normalized_shape))}) (its first sized layer is {m})"
    return "an input its layers accept"


class _Tap:
    """The forward hook on one tapped layer: applies that layer's heads to its output."""

    def __init__(self, owner: AuxHeads, layer: str) -> None:
        self.owner = owner
        self.layer = layer

    def __call__(self, module: nn.Module, args: Any, output: Any) -> None:
        self.owner._on_output(self.layer, output)


class AuxHeads(nn.Module):
    """A backbone with heads on named intermediate layers; forward returns a dict of outputs.

    Build it with :func:`attach_heads`. ``forward(*args, **kwargs)`` calls the backbone with
    the same arguments. The backbone's output becomes the ``main`` output (if the backbone
    already returns a dict, its entries are kept as they are), and every head's output is
    added under the head's name.

    Heads run in training and in evaluation mode, so :func:`~auxlab.evaluate` reports their
    losses too; for inference without them, use :func:`strip_aux`.

    Args:
        backbone: Any ``nn.Module``. It is used, not copied.
        heads: ``{name: (layer, head)}``: ``layer`` is a name from
            ``backbone.named_modules()``, ``head`` an ``nn.Module`` (or any callable) applied
            to that layer's output. Several heads may tap the same layer.
        main: Name of the backbone's output when it returns a tensor.
        detach: Names of heads whose input is detached from the graph: their loss trains
            the head only (a *probe* of the features) and sends no gradient into the
            backbone.
        clone: Give each head a copy of the tapped output (costs memory). Needed only when a
            later layer modifies the tapped tensor in place.

    Attributes:
        backbone: The main model.
        heads: ``nn.ModuleDict`` of the heads (callables that are not modules are kept in
            ``head_fns``).
        taps: ``{head name: layer name}``.
        output_names: ``(main, *heads)`` when the backbone returns a tensor.

    Raises:
        KeyError: (at construction) a layer name that the backbone does not have; the
            message lists close matches and every available layer.
        ValueError: (at forward) a head that does not fit its layer's output, naming both
            shapes; a tapped layer that did not run, or ran twice, in one forward.
    """

    def __init__(
        self,
        backbone: nn.Module,
        heads: Mapping[str, tuple[str, nn.Module | Callable[[Any], Any]]],
        main: str = "main",
        detach: Collection[str] = (),
        clone: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(backbone, nn.Module):
            raise TypeError(f"backbone must be an nn.Module, got {type(backbone).__name__}")
        if not isinstance(heads, Mapping) or not heads:
            raise TypeError('heads must be a non-empty dict {"name": ("layer", head)}')
        layers = dict(backbone.named_modules())
        available = [n for n in layers if n]
        self.backbone = backbone
        self.heads = nn.ModuleDict()
        self.head_fns: dict[str, Callable[[Any], Any]] = {}
        self.taps: dict[str, str] = {}
        self.main = main
        for name, spec in heads.items():
            if not isinstance(name, str) or not name or name == main:
                raise ValueError(
                    f"head names must be non-empty strings other than the main output "
                    f"'{main}', got {name!r}"
                )
            if not (isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str)):
                raise TypeError(
                    f"head '{name}' must be given as (layer_name, head_module), got {spec!r}"
                )
            layer, head = spec
            if layer not in layers or not layer:
                raise KeyError(_missing_layer_message(name, layer, backbone, available))
            if isinstance(head, nn.Module):
                self.heads[name] = head
            elif callable(head):
                self.head_fns[name] = head
            else:
                raise TypeError(f"head '{name}' must be an nn.Module or a callable, got {head!r}")
            self.taps[name] = layer
        unknown = [d for d in detach if d not in self.taps]
        if unknown:
            raise ValueError(f"detach names {unknown}, which are not heads {list(self.taps)}")
        self.detach = frozenset(detach)
        self.clone = bool(clone)
        self._layers_of: dict[str, list[str]] = {}
        for head_name, layer in self.taps.items():
            self._layers_of.setdefault(layer, []).append(head_name)
        self._install_hooks()
        # Per-forward scratch: None outside a forward of this wrapper, so calling the backbone
        # directly does not run (or store) anything.
        self._results: dict[str, Any] | None = None
        self._seen: dict[str, tuple[torch.Tensor | None, int]] = {}

    # -- hooks ------------------------------------------------------------------------------
    def _install_hooks(self) -> None:
        modules = dict(self.backbone.named_modules())
        for layer in self._layers_of:
            modules[layer].register_forward_hook(_Tap(self, layer))

    def _remove_hooks(self) -> None:
        # Found by scanning rather than through RemovableHandles: a deep copy of this model
        # copies the hooks, but its handles would still point at the original's hook dicts.
        for m in self.backbone.modules():
            for key, hook in list(m._forward_hooks.items()):
                if isinstance(hook, _Tap) and hook.owner is self:
                    del m._forward_hooks[key]
                    m._forward_hooks_with_kwargs.pop(key, None)
                    m._forward_hooks_always_called.pop(key, None)

    @contextmanager
    def _hooks_removed(self) -> Iterator[None]:
        self._remove_hooks()
        try:
            yield
        finally:
            self._install_hooks()

    def _head(self, name: str) -> Callable[[Any], Any]:
        return self.heads[name] if name in self.heads else self.head_fns[name]

    def _on_output(self, layer: str, output: Any) -> None:
        results = self._results
        if results is None:  # the backbone was called on its own, not through this wrapper
            return
        if layer in self._seen:
            raise ValueError(
                f"layer '{layer}' ran more than once in one forward; a head needs one output "
                "per forward. Tap a module that runs once (e.g. the block that contains it), "
                "or give each use its own module."
            )
        first = output if isinstance(output, torch.Tensor) else None
        self._seen[layer] = (first, first._version if first is not None else 0)
        for name in self._layers_of[layer]:
            x = output
            if isinstance(x, torch.Tensor):
                if name in self.detach:
                    x = x.detach()
                if self.clone:
                    x = x.clone()
            try:
                results[name] = self._head(name)(x)
            except (RuntimeError, ValueError) as exc:
                raise ValueError(
                    f"head '{name}' does not fit layer '{layer}': the layer's output has shape "
                    f"{_describe(output)}, but the head expects {_expected_input(self._head(name))}"
                    f". The head raised: {exc}"
                ) from exc

    # -- forward ----------------------------------------------------------------------------
    @property
    def output_names(self) -> tuple[str, ...]:
        """``(main, *heads)``, the outputs in their declared order."""
        return (self.main, *self.taps)

    def forward(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Run the backbone; return ``{main: output, head: head output, ...}``."""
        self._results = {}
        self._seen = {}
        try:
            out = self.backbone(*args, **kwargs)
            results = self._results
            seen = self._seen
        finally:
            self._results = None
            self._seen = {}
        missing = [layer for layer in self._layers_of if layer not in seen]
        if missing:
            raise ValueError(
                f"layer(s) {missing} did not run during the backbone's forward, so heads "
                f"{[h for h in self.taps if self.taps[h] in missing]} got no input. Tap layers "
                "that the forward calls."
            )
        if not self.clone:
            for layer, (tensor, version) in seen.items():
                if tensor is not None and tensor._version != version:
                    raise RuntimeError(
                        f"the output of layer '{layer}' was modified in place later in the "
                        "forward (e.g. by ReLU(inplace=True)) after its head read it, which "
                        "would corrupt the head's gradient. Tap the layer that does the in-place "
                        "operation instead, or pass clone=True."
                    )
        if isinstance(out, Mapping):
            clash = [k for k in results if k in out]
            if clash:
                raise ValueError(
                    f"head names {clash} clash with the backbone's outputs {list(out)}"
                )
            return {**out, **results}
        if isinstance(out, (tuple, list)):
            raise TypeError(
                f"the backbone returned a {type(out).__name__}; AuxHeads needs a tensor (the "
                "main output) or a dict of named outputs. Wrap the backbone so that it returns "
                "one of these."
            )
        return {self.main: out, **results}

    def extra_repr(self) -> str:
        return "taps=" + ", ".join(f"{h}<-{layer!r}" for h, layer in self.taps.items())


def _missing_layer_message(head: str, layer: str, backbone: nn.Module, available: list[str]) -> str:
    close = difflib.get_close_matches(layer, available, n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return (
        f"head '{head}' taps layer {layer!r}, which {type(backbone).__name__} does not have."
        f"{hint} Available layers (names from named_modules()): {', '.join(available) or 'none'}."
    )


def attach_heads(
    backbone: nn.Module,
    heads: Mapping[str, tuple[str, nn.Module | Callable[[Any], Any]]],
    main: str = "main",
    detach: Collection[str] = (),
    clone: bool = False,
    example_input: Any = None,
) -> AuxHeads:
    """Attach heads to named layers of ``backbone``; the result returns a dict of outputs.

    Args:
        backbone: Any ``nn.Module``; it is used, not copied (its parameters are shared).
        heads: ``{name: (layer, head)}``, e.g. ``{"aux1": ("features.3", head)}``. ``layer``
            is a name from ``backbone.named_modules()``.
        main: Name of the backbone's own output.
        detach: Heads whose input is detached (probes that do not train the backbone).
        clone: Give heads a copy of the tapped output (see :class:`AuxHeads`).
        example_input: Optional input (a tensor, or a tuple of positional inputs) for one
            forward in evaluation mode without gradients, so a head that does not fit its
            layer fails here rather than at the first training step.

    Returns:
        An :class:`AuxHeads` model whose forward returns ``{main: ..., name: ..., ...}``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> model = attach_heads(net, {"aux": ("1", nn.Linear(8, 3))})
        >>> {k: tuple(v.shape) for k, v in model(torch.zeros(2, 4)).items()}
        {'main': (2, 3), 'aux': (2, 3)}
        >>> strip_aux(model)(torch.zeros(2, 4)).shape
        torch.Size([2, 3])
    """
    model = AuxHeads(backbone, heads, main=main, detach=detach, clone=clone)
    if example_input is not None:
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                if isinstance(example_input, tuple):
                    model(*example_input)
                else:
                    model(example_input)
        finally:
            model.train(was_training)
    return model


def strip_aux(model: nn.Module, copy: bool = True) -> nn.Module:
    """The main-only model, for inference and export: the backbone without heads or hooks.

    Args:
        model: An :class:`AuxHeads` model. A model with a ``strip_aux()`` method is asked for
            its own; any other module is returned unchanged (it has no auxiliary heads).
        copy: Return an independent copy (default), leaving ``model`` usable for more
            training. With ``copy=False`` the backbone itself is returned with its hooks
            removed, and ``model`` no longer runs its heads (it must not be used again).

    Returns:
        A module that computes the backbone's main output with the same parameters' values
        and has none of the heads' parameters.
    """
    if isinstance(model, AuxHeads):
        if not copy:
            model._remove_hooks()
            return model.backbone
        with model._hooks_removed():
            return _copy.deepcopy(model.backbone)
    own = getattr(model, "strip_aux", None)
    if callable(own):
        result = own()
        if not isinstance(result, nn.Module):
            raise TypeError(f"{type(model).__name__}.strip_aux() must return an nn.Module")
        return result
    return model
