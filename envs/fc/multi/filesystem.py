"""File-system domain: a flat in-memory tree of folders and text files."""

from __future__ import annotations

import random

from pydantic import Field

from resrl.core.task import Split
from resrl.core.tools import ToolError, tool
from resrl_envs.fc.multi.engine import Builder, DomainState, MultiTurnFCEnv, TurnSpec, call, split_pool

FOLDERS = (
    "docs",
    "notes",
    "reports",
    "drafts",
    "archive",
    "photos",
    "music",
    "projects",
    "invoices",
    "letters",
    "recipes",
    "scripts",
)
STEMS = (
    "budget",
    "todo",
    "meeting",
    "ideas",
    "summary",
    "plan",
    "journal",
    "readme",
    "travel",
    "groceries",
    "draft",
    "minutes",
    "checklist",
    "roadmap",
    "review",
    "contacts",
)
WORDS = (
    "alpha",
    "bravo",
    "quarterly numbers",
    "call the bank",
    "ship it",
    "buy milk",
    "fix the bug",
    "renew passport",
    "book dentist",
    "water plants",
    "pay rent",
    "update slides",
    "backup disk",
    "send invoice",
    "walk dog",
    "read chapter",
)


class FileSystem(DomainState):
    """Folders and files; paths are ``folder/name`` or a bare ``name`` at the root."""

    folders: list[str] = Field(default_factory=list)
    files: dict[str, str] = Field(default_factory=dict)

    def _folder_of(self, path: str) -> str:
        return path.rsplit("/", 1)[0] if "/" in path else ""

    def _need_file(self, path: str) -> str:
        if path not in self.files:
            raise ToolError(f"no such file: {path}")
        return self.files[path]

    def _check_target(self, path: str) -> None:
        folder = self._folder_of(path)
        if folder and folder not in self.folders:
            raise ToolError(f"no such folder: {folder}")

    @tool
    def list_dir(self, folder: str = "") -> list[str]:
        """List the files and folders directly inside a folder.

        Args:
            folder: the folder to list; empty for the root.
        """
        if folder and folder not in self.folders:
            raise ToolError(f"no such folder: {folder}")
        names = [p.rsplit("/", 1)[-1] for p in self.files if self._folder_of(p) == folder]
        subfolders = [f + "/" for f in self.folders if not folder]
        return sorted(subfolders + names)

    @tool
    def read_file(self, path: str) -> str:
        """Return the content of a file.

        Args:
            path: the file path, like ``docs/plan.txt``.
        """
        return self._need_file(path)

    @tool
    def write_file(self, path: str, content: str) -> str:
        """Create a file (or overwrite it) with the given content.

        Args:
            path: the file path.
            content: the full text to store.
        """
        self._check_target(path)
        self.files[path] = content
        return f"wrote {len(content)} characters to {path}"

    @tool
    def append_line(self, path: str, line: str) -> str:
        """Append one line of text to an existing file.

        Args:
            path: the file path.
            line: the text to add as a new line.
        """
        text = self._need_file(path)
        self.files[path] = f"{text}\n{line}" if text else line
        return f"appended to {path}"

    @tool
    def make_folder(self, name: str) -> str:
        """Create a folder at the root.

        Args:
            name: the folder name.
        """
        if "/" in name or not name:
            raise ToolError("folder names must be non-empty and contain no '/'")
        if name in self.folders:
            raise ToolError(f"folder already exists: {name}")
        self.folders.append(name)
        self.folders.sort()
        return f"created folder {name}"

    @tool
    def move_file(self, source: str, destination: str) -> str:
        """Move or rename a file.

        Args:
            source: the current path.
            destination: the new path.
        """
        text = self._need_file(source)
        self._check_target(destination)
        if destination in self.files:
            raise ToolError(f"destination exists: {destination}")
        del self.files[source]
        self.files[destination] = text
        return f"moved {source} to {destination}"

    @tool
    def copy_file(self, source: str, destination: str) -> str:
        """Copy a file to a new path.

        Args:
            source: the file to copy.
            destination: the path of the copy.
        """
        text = self._need_file(source)
        self._check_target(destination)
        self.files[destination] = text
        return f"copied {source} to {destination}"

    @tool
    def delete_file(self, path: str) -> str:
        """Delete a file.

        Args:
            path: the file to delete.
        """
        self._need_file(path)
        del self.files[path]
        return f"deleted {path}"

    @tool
    def search_text(self, query: str, folder: str = "") -> list[str]:
        """Paths of files (in a folder, or anywhere when empty) whose content contains the query.

        Args:
            query: the text to look for (case-sensitive).
            folder: restrict the search to this folder; empty searches everywhere.
        """
        return sorted(p for p, t in self.files.items() if query in t and (not folder or p.startswith(folder + "/")))

    @tool
    def count_lines(self, path: str) -> int:
        """Number of lines in a file.

        Args:
            path: the file path.
        """
        text = self._need_file(path)
        return len(text.splitlines())


T = {
    "create": (
        ["Create a file {path} containing '{content}'.", "Please make {path} with the text '{content}'."],
        ["I need a new file at {path}; put '{content}' in it.", "Write '{content}' into a fresh file {path}."],
    ),
    "create_missing": (
        ["Create a file {path} for me.", "Please make a new file {path}."],
        ["I need a new file at {path}.", "Set up a fresh file {path}, would you?"],
    ),
    "create_supply": (
        ["Its content should be '{content}'.", "Put '{content}' in it."],
        ["The text is '{content}'.", "Fill it with '{content}'."],
    ),
    "append": (
        ["Add the line '{line}' to {path}.", "Append '{line}' at the end of {path}."],
        ["Tack '{line}' onto {path} as a new line.", "{path} needs one more line: '{line}'."],
    ),
    "move": (
        ["Move {path} into the {folder} folder.", "Put {path} in {folder}/ please."],
        ["Relocate {path} to the folder {folder}.", "File {path} belongs in {folder}; shift it there."],
    ),
    "move_missing": (
        ["Move {path} into another folder.", "Put {path} somewhere else, in a folder."],
        ["Relocate {path} to a different folder.", "File {path} should go into a folder."],
    ),
    "move_supply": (
        ["Use the {folder} folder.", "The folder is {folder}."],
        ["Into {folder}, please.", "Pick {folder}."],
    ),
    "copy": (
        ["Make a backup copy of {path} named {dest}.", "Copy {path} to {dest}."],
        ["Duplicate {path} as {dest}.", "I want {dest} to be a copy of {path}."],
    ),
    "delete": (
        ["Delete {path}.", "Remove the file {path}."],
        ["Get rid of {path}.", "Trash {path}, I no longer need it."],
    ),
    "read": (
        ["What does {path} say?", "Show me the content of {path}."],
        ["Read {path} out to me.", "Open {path} and tell me what is inside."],
    ),
    "count": (
        ["How many lines does {path} have?", "Count the lines in {path}."],
        ["Give me the line count of {path}.", "How long is {path}, in lines?"],
    ),
    "search": (
        ["Which files mention '{query}'?", "Find every file containing '{query}'."],
        ["Search all files for '{query}'.", "Where did I write '{query}'?"],
    ),
}


def _existing(b: Builder) -> str | None:
    files = sorted(b.state.files)
    return b.rng.choice(files) if files else None


def _fresh_path(b: Builder) -> str:
    folders = b.state.folders
    for _ in range(20):
        stem = b.pick(STEMS)
        path = f"{b.rng.choice(folders)}/{stem}.txt" if folders and b.rng.random() < 0.6 else f"{stem}.txt"
        if path not in b.state.files:
            return path
    return f"{b.pick(STEMS)}_{len(b.state.files)}.txt"


def op_create(b: Builder) -> TurnSpec:
    path, content = _fresh_path(b), b.pick(WORDS)
    return TurnSpec(
        user=b.say("create", path=path, content=content),
        calls=[call("write_file", path=path, content=content)],
        closing=f"Created {path}.",
        missing_user=b.say("create_missing", path=path),
        supply=b.say("create_supply", content=content),
    )


def op_append(b: Builder) -> TurnSpec | None:
    path = _existing(b)
    if path is None:
        return None
    line = b.pick(WORDS)
    return TurnSpec(user=b.say("append", path=path, line=line), calls=[call("append_line", path=path, line=line)])


def op_move(b: Builder) -> TurnSpec | None:
    path = _existing(b)
    if path is None:
        return None
    folder = b.pick(FOLDERS)
    dest = f"{folder}/{path.rsplit('/', 1)[-1]}"
    if folder == b.state._folder_of(path) or dest in b.state.files:
        return None
    calls = [] if folder in b.state.folders else [call("make_folder", name=folder)]
    calls.append(call("move_file", source=path, destination=dest))
    return TurnSpec(
        user=b.say("move", path=path, folder=folder),
        calls=calls,
        closing=f"Moved it to {dest}.",
        missing_user=b.say("move_missing", path=path),
        supply=b.say("move_supply", folder=folder),
    )


def op_copy(b: Builder) -> TurnSpec | None:
    path = _existing(b)
    if path is None or path.endswith(".bak"):
        return None
    dest = path + ".bak"
    if dest in b.state.files:
        return None
    return TurnSpec(user=b.say("copy", path=path, dest=dest), calls=[call("copy_file", source=path, destination=dest)])


def op_delete(b: Builder) -> TurnSpec | None:
    path = _existing(b)
    if path is None or len(b.state.files) < 3:
        return None
    return TurnSpec(user=b.say("delete", path=path), calls=[call("delete_file", path=path)], closing="Deleted.")


def op_read(b: Builder) -> TurnSpec | None:
    path = _existing(b)
    if path is None:
        return None
    return TurnSpec(
        user=b.say("read", path=path), calls=[call("read_file", path=path)], closing=f"That is the content of {path}."
    )


def op_count(b: Builder) -> TurnSpec | None:
    path = _existing(b)
    if path is None:
        return None
    return TurnSpec(
        user=b.say("count", path=path), calls=[call("count_lines", path=path)], closing="That is the line count."
    )


def op_search(b: Builder) -> TurnSpec | None:
    texts = [line for t in b.state.files.values() for line in t.splitlines()]
    if not texts:
        return None
    query = b.rng.choice(texts).split(" ")[0]
    return TurnSpec(
        user=b.say("search", query=query),
        calls=[call("search_text", query=query)],
        closing="Those are the matching files.",
    )


class FileSystemEnv(MultiTurnFCEnv):
    """Multi-turn file management over a deterministic in-memory file system."""

    description = "Multi-turn stateful function calling: manage files and folders in a virtual file system."
    tags = ("function-calling", "multi-turn", "filesystem")
    domain = "filesystem"
    state_cls = FileSystem
    system_prompt = (
        "You are a file assistant. Use the tools to act on the user's files. When a request lacks "
        "a required detail, ask for it; when no tool can do it, say so."
    )
    templates = T
    ops = (op_create, op_append, op_move, op_copy, op_delete, op_read, op_count, op_search)

    @classmethod
    def initial_state(cls, rng: random.Random, split: Split) -> FileSystem:
        folders = sorted(rng.sample(split_pool(FOLDERS, split), 2))
        files = {}
        for stem in rng.sample(split_pool(STEMS, split), 4):
            path = f"{rng.choice(folders)}/{stem}.txt" if rng.random() < 0.5 else f"{stem}.txt"
            files[path] = "\n".join(rng.sample(split_pool(WORDS, split), rng.randint(1, 3)))
        return FileSystem(folders=folders, files=files)
