"""A stdio MCP server on the official Python SDK (2.x), for woollama's tests:
a real peer that speaks 2026-07-28 (it answers `server/discover`) and, like
the SDK does, names itself in every result's `_meta`.

One tool, `shout`, upper-cases its `text`.
"""

from mcp.server.mcpserver import MCPServer

app = MCPServer("python-sdk-server")


@app.tool()
def shout(text: str) -> str:
    """Upper-case the text."""
    return text.upper()


app.run()
