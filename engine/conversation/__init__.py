"""The conversation layer: what turns a media session into an agent.

:class:`~engine.conversation.agent.CallAgent` listens to a media session's events and
drives speech-to-text, the language model and text-to-speech. Whose turn it is and what
to answer when is the sans-IO :class:`~engine.conversation.turn.TurnPolicy`'s to say; the
other pieces are small and mostly sans-IO too (chunking text into speakable pieces,
conversation history with heard-text truncation, DTMF collection, turn completion).
"""
