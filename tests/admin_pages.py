"""Reading admin pages in tests: the page's text and the messages it shows."""

import html
import re


def page_of(response) -> str:
    """The page's HTML with its entities decoded."""
    return html.unescape(response.content.decode())


def messages_of(response) -> list[tuple[str, str]]:
    """The (level, text) messages a page shows."""
    block = re.search(r'<ul class="messagelist">(.*?)</ul>', response.content.decode(), re.S)
    if block is None:
        return []
    return [
        (level, html.unescape(re.sub(r"<[^>]+>", "", text)))
        for level, text in re.findall(r'<li class="(\w+)">(.*?)</li>', block.group(1), re.S)
    ]
