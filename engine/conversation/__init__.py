"""The conversation layer: what turns a media session into an agent.

:class:`~engine.conversation.agent.CallAgent` listens to a media session's events and
drives speech-to-text, the language model and text-to-speech; the pieces it uses are
small and mostly sans-IO (chunking text into speakable pieces, conversation history
with heard-text truncation, DTMF collection).
"""
