"""The public API for writing Python tools: ``from callagent.tools import function_tool``.

See :mod:`engine.conversation.function_tools` for how tools are built, discovered (the
``callagent.tools`` entry point group) and run, and ``examples/order_status`` for a package.
"""

from engine.conversation.context import ToolContext
from engine.conversation.function_tools import FunctionTool, ToolError, function_tool

__all__ = ["FunctionTool", "ToolContext", "ToolError", "function_tool"]
