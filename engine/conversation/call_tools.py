"""The model's tools on one call: which it is offered, and running the calls it makes.

The offer is the agent profile's tools, plus ``search_knowledge`` when the call's setup attaches
knowledge. A knowledge search is answered here; call control's own tools (hang up, transfer,
DTMF, recording) and the user's (HTTP, Python functions) go through
:class:`~.call_control.CallControl`, with the egress policy and context from the call's setup.
"""

from __future__ import annotations

from typing import Any

from ..providers.base import ToolCall
from .call_control import CallControl
from .config import AgentConfig, AgentProfile
from .context import ToolContext
from .egress import EgressPolicy
from .history import Conversation
from .knowledge import SEARCH_TOOL, SEARCH_TOOL_NAME, TurnKnowledge
from .ports import CallSetup
from .tools import ToolClient, tool_definitions


class CallTools:
    __slots__ = ("definitions", "client", "egress", "context", "knowledge")

    def __init__(self, profile: AgentProfile, client: ToolClient | None) -> None:
        self.definitions: list[dict[str, Any]] = tool_definitions(profile)
        """What the model is offered (OpenAI tool format)."""
        self.client = client
        self.egress: EgressPolicy | None = None  # the server's, unless the call's setup says otherwise
        self.context: ToolContext | None = None  # the call's, from its setup
        self.knowledge: TurnKnowledge | None = None  # set when the call's setup attaches knowledge

    def set_up(self, setup: CallSetup) -> None:
        """The call's own agent, knowledge, tool destinations and context."""
        self.definitions = tool_definitions(setup.profile)
        if setup.knowledge is not None:
            self.knowledge = TurnKnowledge(setup.knowledge)
            self.definitions = [*self.definitions, SEARCH_TOOL]
        if self.client is not None and setup.tool_destinations:
            self.egress = self.client.policy_for(setup.tool_destinations)
        self.context = setup.tool_context

    async def run(self, calls: list[ToolCall], messages: list[dict[str, Any]], conversation: Conversation,
                  control: CallControl, config: AgentConfig, call_control_id: str | None) -> bool:
        """Run the model's tool calls, their results into the history and ``messages``; True
        when the model should continue with the results."""
        context = self.context or ToolContext(call_control_id=call_control_id, variables=config.variables)
        searched = False
        if self.knowledge is not None:  # the model's own knowledge query; the rest is call control's
            for call in [c for c in calls if c.name == SEARCH_TOOL_NAME]:
                result = await self.knowledge.run_tool(call.arguments)
                conversation.add_tool_exchange(call.id, call.name, call.arguments, result)
                messages.extend(conversation.messages[-2:])
                searched = True
            calls = [c for c in calls if c.name != SEARCH_TOOL_NAME]
        ran = await control.run_tools(calls, messages, conversation, config, self.client, self.egress, context)
        return ran or searched
