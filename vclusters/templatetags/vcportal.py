from django import template
from django.utils import timezone
from django.utils.timesince import timesince

register = template.Library()


@register.filter
def ago(moment) -> str:
    """"just now" for the first minute, then "3 minutes ago"."""
    if moment is None:
        return ""
    if (timezone.now() - moment).total_seconds() < 60:
        return "just now"
    return f"{timesince(moment)} ago"


@register.filter
def duration(step) -> str:
    """How long a finished step took: "44 ms", "2.5 s", "12 s", "2 min 5 s", "1 h 3 min"."""
    started, finished = getattr(step, "started_at", None), getattr(step, "finished_at", None)
    if started is None or finished is None:
        return ""
    return seconds_text(max((finished - started).total_seconds(), 0.0))


def seconds_text(seconds: float) -> str:
    if round(seconds * 1000) < 1000:
        return f"{round(seconds * 1000)} ms"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"
