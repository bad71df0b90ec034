"""The crop box panel of one tab, on stand-ins for viser's GUI and scene handles."""

import contextlib
from types import SimpleNamespace

import numpy as np
import torch

from nfields.viewer.crop_box import CropBox, valid_box


class Handle(SimpleNamespace):
    """A GUI or scene handle: setting `value` calls its update callbacks, as viser's do."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        object.__setattr__(self, "callbacks", [])

    def on_update(self, callback):
        self.callbacks.append(callback)

    on_click = on_update

    def __setattr__(self, name, value):
        super().__setattr__(name, value)
        if name == "value":
            for callback in self.callbacks:
                callback(None)


def fake_client():
    gui = SimpleNamespace(
        add_folder=lambda *a, **k: contextlib.nullcontext(),
        add_checkbox=lambda label, initial_value: Handle(label=label, value=initial_value),
        add_vector3=lambda label, initial_value, step: Handle(label=label, value=tuple(initial_value)),
        add_button=lambda label: Handle(label=label, value=None))
    scene = SimpleNamespace(
        add_box=lambda name, **k: Handle(name=name, position=(0.0, 0.0, 0.0), **k),
        add_transform_controls=lambda name, **k: Handle(name=name, position=(0.0, 0.0, 0.0), **k))
    return SimpleNamespace(gui=gui, scene=scene)


def test_crop_box_sets_the_tab_crop_and_its_wireframe():
    session = SimpleNamespace(crop=None, changes=0)
    session.view_changed = lambda: setattr(session, "changes", session.changes + 1)
    scene_box = np.array([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0])
    crop = CropBox(fake_client(), session, scene_box)
    assert session.crop is None and not crop.wireframe.visible  # off by default
    crop.enabled.value = True
    assert torch.equal(session.crop, torch.tensor(scene_box, dtype=torch.float32)) and crop.wireframe.visible
    crop.high.value = (0.5, 1.0, 0.2)
    assert torch.allclose(session.crop, torch.tensor([-1.0, -1.0, -1.0, 0.5, 1.0, 0.2]))
    np.testing.assert_allclose(crop.wireframe.dimensions, (1.5, 2.0, 1.2))
    np.testing.assert_allclose(crop.wireframe.position, (-0.25, 0.0, -0.4))
    # The gizmo moves the box, its size kept, in one change.
    changes = session.changes
    crop.gizmo.position = np.array([0.0, 0.5, 0.0])
    for callback in crop.gizmo.callbacks:
        callback(None)
    assert torch.allclose(session.crop, torch.tensor([-0.75, -0.5, -0.6, 0.75, 1.5, 0.6]))
    assert session.changes == changes + 1
    crop.enabled.value = False
    assert session.crop is None and not crop.wireframe.visible


def test_a_box_inside_out_keeps_a_positive_size():
    np.testing.assert_allclose(valid_box((0, 0, 0), (1, -1, 0)), [0, 0, 0, 1, 1e-3, 1e-3])
