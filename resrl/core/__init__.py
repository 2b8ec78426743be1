"""The contracts every part of resrl shares: tasks, chat environments, tools, tool-call formats, registry."""
