"""One tab's crop box: its GUI (min/max corners and a move gizmo), its wireframe, and the box its renders use."""

from __future__ import annotations

import numpy as np
import torch

from .session import ClientSession

COLOR = (255, 140, 0)


def valid_box(low, high, min_side: float = 1e-3) -> np.ndarray:
    """(6,) min xyz then max xyz from two corners, each max at least `min_side` above its min."""
    low = np.asarray(low, dtype=np.float64)
    high = np.maximum(np.asarray(high, dtype=np.float64), low + min_side)
    return np.concatenate([low, high])


class CropBox:
    """The "Crop box" panel of one tab: samples outside the box count as empty in that tab's renders
    (`VolumeRenderer.render(crop=...)`). Starts off, at `scene_box` (6,) (the renderer's box)."""

    def __init__(self, client, session: ClientSession, scene_box: np.ndarray):
        self.session, self.scene_box = session, np.asarray(scene_box, dtype=np.float64)
        self._moving = False  # the gizmo moves both corners: apply once, after both
        gui = client.gui
        side = float((self.scene_box[3:] - self.scene_box[:3]).max())
        with gui.add_folder("Crop box", expand_by_default=False):
            self.enabled = gui.add_checkbox("Crop", initial_value=False)
            self.low = gui.add_vector3("Crop min", initial_value=tuple(self.scene_box[:3]), step=0.01)
            self.high = gui.add_vector3("Crop max", initial_value=tuple(self.scene_box[3:]), step=0.01)
            reset = gui.add_button("Reset to the scene box")
        self.wireframe = client.scene.add_box("/crop_box", color=COLOR, dimensions=(1.0, 1.0, 1.0), wireframe=True,
                                              visible=False)
        self.gizmo = client.scene.add_transform_controls("/crop_box_centre", scale=0.25 * side,
                                                         disable_rotations=True, visible=False)
        for handle in (self.enabled, self.low, self.high):
            handle.on_update(lambda _: self._apply())
        self.gizmo.on_update(lambda _: self._move_to(np.asarray(self.gizmo.position)))

        @reset.on_click
        def _(_) -> None:
            self.low.value, self.high.value = tuple(self.scene_box[:3]), tuple(self.scene_box[3:])

        self._apply()

    @property
    def box(self) -> np.ndarray:
        """The box (6,) the controls describe, whether or not cropping is on."""
        return valid_box(self.low.value, self.high.value)

    def _move_to(self, centre: np.ndarray) -> None:
        box = self.box
        shift = centre - 0.5 * (box[:3] + box[3:])
        if np.abs(shift).max() > 1e-9:
            self._moving = True
            try:
                self.low.value, self.high.value = tuple(box[:3] + shift), tuple(box[3:] + shift)
            finally:
                self._moving = False
            self._apply()

    def _apply(self) -> None:
        if self._moving:
            return
        box, on = self.box, bool(self.enabled.value)
        centre = 0.5 * (box[:3] + box[3:])
        self.wireframe.position, self.wireframe.dimensions = centre, tuple(box[3:] - box[:3])
        self.wireframe.visible = self.gizmo.visible = on
        if np.abs(np.asarray(self.gizmo.position) - centre).max() > 1e-9:
            self.gizmo.position = centre
        self.session.crop = torch.tensor(box, dtype=torch.float32) if on else None
        self.session.view_changed()
