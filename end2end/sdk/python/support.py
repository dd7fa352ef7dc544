"""Constants and helpers shared by the SDK tests."""

# Models served by `weir serve --demo`.
ECHO = "demo/echo"  # OpenAI-format upstream
CLAUDE_ECHO = "demo/claude-echo"  # Anthropic-format upstream, translated by Weir
CODENAME = "demo-echo"  # a codename routed to both
EMBED = "demo/embed"
# Every chat model that answers "echo: <last user text>".
CHAT_MODELS = [ECHO, CLAUDE_ECHO, CODENAME]
# The two upstream wire formats.
WIRE_MODELS = [ECHO, CLAUDE_ECHO]
