"""Wording shared by the summaries commands and the admin print."""


def counted(number: int, noun: str, plural: str | None = None) -> str:
    """ "1 lead", "2 leads", "1,000 leads"; `plural` for nouns that do not take an s."""
    return f"{number:,} {noun if number == 1 else plural or noun + 's'}"


def sentence(text: str) -> str:
    """`text` with a capital first letter: a service's message ("lead 12 is ...") opening a sentence."""
    return text[:1].upper() + text[1:]
