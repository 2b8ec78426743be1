"""Smart-home domain: lights, thermostats, locks and speakers in rooms, plus saved scenes."""

from __future__ import annotations

import random

from pydantic import BaseModel, Field

from resrl.core.task import Split
from resrl.core.tools import ToolError, tool
from resrl_envs.fc.multi.engine import Builder, DomainState, MultiTurnFCEnv, Operation, TurnSpec, call, split_pool

ROOMS = (
    "kitchen",
    "bedroom",
    "living room",
    "office",
    "garage",
    "hallway",
    "bathroom",
    "porch",
    "attic",
    "nursery",
    "basement",
    "den",
)
KINDS = ("light", "thermostat", "lock", "speaker")
POWERED = ("light", "thermostat", "speaker")  # locks are locked/unlocked, never switched
SCENES = ("movie night", "good morning", "away", "dinner", "reading", "party", "bedtime", "focus")


class Device(BaseModel):
    """One device. ``level`` is brightness (lights, 0-100), volume (speakers, 0-100) or °C (thermostats)."""

    name: str
    kind: str
    room: str
    on: bool = False
    level: int = 0
    locked: bool = False


class Home(DomainState):
    """Devices by name and scenes (name → the device names a scene turns on)."""

    devices: dict[str, Device] = Field(default_factory=dict)
    scenes: dict[str, list[str]] = Field(default_factory=dict)

    def _device(self, name: str, kind: str | None = None) -> Device:
        if name not in self.devices:
            raise ToolError(f"no device named {name!r}")
        device = self.devices[name]
        if kind and device.kind != kind:
            raise ToolError(f"{name} is a {device.kind}, not a {kind}")
        return device

    def _powered(self, name: str) -> Device:
        device = self._device(name)
        if device.kind == "lock":
            raise ToolError(f"{name} is a lock: use lock or unlock, it cannot be switched on or off")
        return device

    @tool
    def list_devices(self, room: str = "") -> list[dict[str, object]]:
        """Devices (name, kind, room), optionally only in one room.

        Args:
            room: the room to list; empty for the whole home.
        """
        return [
            {"name": d.name, "kind": d.kind, "room": d.room}
            for d in self.devices.values()
            if not room or d.room == room
        ]

    @tool
    def device_status(self, name: str) -> dict[str, object]:
        """The full state of one device.

        Args:
            name: the device name.
        """
        return self._device(name).model_dump()

    @tool
    def turn_on(self, name: str) -> str:
        """Switch a device on.

        Args:
            name: the device name.
        """
        self._powered(name).on = True
        return f"{name} is on"

    @tool
    def turn_off(self, name: str) -> str:
        """Switch a device off.

        Args:
            name: the device name.
        """
        self._powered(name).on = False
        return f"{name} is off"

    @tool
    def set_brightness(self, name: str, percent: int) -> str:
        """Set a light's brightness (switching it on).

        Args:
            name: the light's name.
            percent: brightness from 0 to 100.
        """
        light = self._device(name, "light")
        if not 0 <= percent <= 100:
            raise ToolError("percent must be between 0 and 100")
        light.level, light.on = percent, True
        return f"{name} at {percent}%"

    @tool
    def set_temperature(self, name: str, celsius: int) -> str:
        """Set a thermostat's target temperature.

        Args:
            name: the thermostat's name.
            celsius: target temperature, 10 to 30.
        """
        thermostat = self._device(name, "thermostat")
        if not 10 <= celsius <= 30:
            raise ToolError("celsius must be between 10 and 30")
        thermostat.level, thermostat.on = celsius, True
        return f"{name} set to {celsius}°C"

    @tool
    def set_volume(self, name: str, percent: int) -> str:
        """Set a speaker's volume.

        Args:
            name: the speaker's name.
            percent: volume from 0 to 100.
        """
        speaker = self._device(name, "speaker")
        if not 0 <= percent <= 100:
            raise ToolError("percent must be between 0 and 100")
        speaker.level = percent
        return f"{name} volume {percent}"

    @tool
    def lock(self, name: str) -> str:
        """Lock a door lock.

        Args:
            name: the lock's name.
        """
        self._device(name, "lock").locked = True
        return f"{name} locked"

    @tool
    def unlock(self, name: str) -> str:
        """Unlock a door lock.

        Args:
            name: the lock's name.
        """
        self._device(name, "lock").locked = False
        return f"{name} unlocked"

    @tool
    def save_scene(self, scene: str, devices: list[str]) -> str:
        """Save a scene: a named set of devices to switch on together.

        Args:
            scene: the scene's name.
            devices: device names the scene switches on.
        """
        for name in devices:
            self._powered(name)
        if not devices:
            raise ToolError("a scene needs at least one device")
        self.scenes[scene] = sorted(set(devices))
        return f"saved scene {scene}"

    @tool
    def activate_scene(self, scene: str) -> list[str]:
        """Switch on every device of a saved scene; returns their names.

        Args:
            scene: the scene's name.
        """
        if scene not in self.scenes:
            raise ToolError(f"no scene {scene!r}; saved scenes: {', '.join(sorted(self.scenes)) or 'none'}")
        for name in self.scenes[scene]:
            self.devices[name].on = True
        return list(self.scenes[scene])


T = {
    "on": (["Turn on the {d}.", "Switch the {d} on."], ["Power up the {d}.", "I want the {d} running."]),
    "off": (["Turn off the {d}.", "Switch the {d} off."], ["Shut the {d} down.", "Kill the {d}."]),
    "dim": (
        ["Set the {d} to {n}% brightness.", "Dim the {d} to {n}%."],
        ["Make the {d} {n} percent bright.", "Bring the {d} to {n}% light."],
    ),
    "dim_missing": (
        ["Change the brightness of the {d}.", "Dim the {d}."],
        ["Adjust how bright the {d} is.", "The {d} needs a different brightness."],
    ),
    "dim_supply": (["{n}%.", "Make it {n} percent."], ["Use {n}%.", "{n} percent, please."]),
    "temp": (
        ["Set the {d} to {n} degrees.", "Heat with the {d} to {n}°C."],
        ["Make the {d} aim for {n}°C.", "Target {n} degrees on the {d}."],
    ),
    "temp_missing": (
        ["Change the {d}'s temperature.", "Adjust the {d}."],
        ["The {d} needs a new target.", "Set a different temperature on the {d}."],
    ),
    "temp_supply": (["{n} degrees.", "Use {n}°C."], ["Go with {n}.", "{n} degrees Celsius."]),
    "room_off": (
        ["Turn everything off in the {room}.", "Switch off all devices in the {room}."],
        ["Power down the whole {room}.", "Nothing in the {room} should stay on."],
    ),
    "lock": (["Lock the {d}.", "Make sure the {d} is locked."], ["Secure the {d}.", "Bolt the {d}."]),
    "unlock": (["Unlock the {d}.", "Open the {d} lock."], ["Release the {d}.", "Let people in: unlock the {d}."]),
    "volume": (
        ["Set the {d} volume to {n}.", "Volume {n} on the {d}."],
        ["Put the {d} at volume {n}.", "Make the {d} play at {n}."],
    ),
    "scene": (
        ["Save a scene '{s}' with {names}, then activate it.", "Create scene '{s}' ({names}) and run it."],
        ["Make a '{s}' scene of {names} and start it now.", "Set up '{s}' with {names}; turn it on."],
    ),
    "status": (["What's the status of the {d}?", "Is the {d} on?"], ["Check the {d}.", "How is the {d} set?"]),
}


def _device(b: Builder, kinds: tuple[str, ...] = KINDS) -> str | None:
    names = sorted(n for n, d in b.state.devices.items() if d.kind in kinds)
    return b.rng.choice(names) if names else None


def _simple(key: str, tool_name: str, kinds: tuple[str, ...]) -> Operation:
    def op(b: Builder) -> TurnSpec | None:
        name = _device(b, kinds)
        if name is None:
            return None
        return TurnSpec(user=b.say(key, d=name), calls=[call(tool_name, name=name)])

    op.__name__ = f"op_{key}"
    return op


def op_dim(b: Builder) -> TurnSpec | None:
    name = _device(b, ("light",))
    if name is None:
        return None
    n = b.rng.randint(1, 19) * 5
    return TurnSpec(
        user=b.say("dim", d=name, n=n),
        calls=[call("set_brightness", name=name, percent=n)],
        missing_user=b.say("dim_missing", d=name),
        supply=b.say("dim_supply", n=n),
    )


def op_temp(b: Builder) -> TurnSpec | None:
    name = _device(b, ("thermostat",))
    if name is None:
        return None
    n = b.rng.randint(16, 26)
    return TurnSpec(
        user=b.say("temp", d=name, n=n),
        calls=[call("set_temperature", name=name, celsius=n)],
        missing_user=b.say("temp_missing", d=name),
        supply=b.say("temp_supply", n=n),
    )


def op_volume(b: Builder) -> TurnSpec | None:
    name = _device(b, ("speaker",))
    if name is None:
        return None
    n = b.rng.randint(1, 10) * 10
    return TurnSpec(user=b.say("volume", d=name, n=n), calls=[call("set_volume", name=name, percent=n)])


def op_room_off(b: Builder) -> TurnSpec | None:
    rooms = sorted({d.room for d in b.state.devices.values() if d.on})
    if not rooms:
        return None
    room = b.rng.choice(rooms)
    on = [n for n, d in b.state.devices.items() if d.room == room and d.on]
    return TurnSpec(
        user=b.say("room_off", room=room),
        calls=[call("list_devices", room=room)] + [call("turn_off", name=n) for n in on],
        closing=f"Everything in the {room} is off.",
    )


def op_scene(b: Builder) -> TurnSpec | None:
    scene = b.pick(SCENES)
    powered = sorted(n for n, d in b.state.devices.items() if d.kind in POWERED)
    if scene in b.state.scenes or len(powered) < 2:
        return None
    names = sorted(b.rng.sample(powered, 2))
    return TurnSpec(
        user=b.say("scene", s=scene, names=" and ".join(names)),
        calls=[call("save_scene", scene=scene, devices=names), call("activate_scene", scene=scene)],
        closing=f"Scene '{scene}' is on.",
    )


def op_status(b: Builder) -> TurnSpec | None:
    name = _device(b)
    return TurnSpec(
        user=b.say("status", d=name), calls=[call("device_status", name=name)], closing="That's its current state."
    )


class SmartHomeEnv(MultiTurnFCEnv):
    """Multi-turn smart-home control over deterministic devices."""

    description = "Multi-turn stateful function calling: control lights, thermostats, locks, speakers and scenes."
    tags = ("function-calling", "multi-turn", "smarthome")
    domain = "smarthome"
    state_cls = Home
    system_prompt = (
        "You control the user's smart home with the tools. Ask when a required detail is missing; "
        "say so when no tool can do it."
    )
    templates = T
    ops = (
        _simple("on", "turn_on", POWERED),
        _simple("off", "turn_off", POWERED),
        op_dim,
        op_temp,
        op_volume,
        op_room_off,
        _simple("lock", "lock", ("lock",)),
        _simple("unlock", "unlock", ("lock",)),
        op_scene,
        op_status,
    )

    @classmethod
    def initial_state(cls, rng: random.Random, split: Split) -> Home:
        devices = {}
        for room in rng.sample(split_pool(ROOMS, split), 3):
            for kind in rng.sample(KINDS, 2):
                name = f"{room} {kind}"
                level = {
                    "light": rng.randint(0, 10) * 10,
                    "thermostat": rng.randint(17, 23),
                    "speaker": rng.randint(0, 10) * 10,
                }.get(kind, 0)
                devices[name] = Device(
                    name=name,
                    kind=kind,
                    room=room,
                    on=kind != "lock" and rng.random() < 0.5,
                    level=level,
                    locked=kind == "lock" and rng.random() < 0.5,
                )
        return Home(devices=devices)
