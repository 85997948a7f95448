"""The fix for older vLLM releases (server/vllm/plugins/compat.py), on a real outlines_core guide."""

from __future__ import annotations

from importlib.metadata import entry_points

from outlines_core import Guide, Index, Vocabulary

from server.vllm.plugins.compat import apply, eos_tolerant

EOS = 3


class _OldOutlinesGrammar:
    """What vLLM 0.26's ``OutlinesGrammar.accept_tokens`` does: advance only on tokens the
    guide accepts."""

    def __init__(self, guide: Guide) -> None:
        self.guide = guide

    def accept_tokens(self, request_id: str, tokens: list[int]) -> bool:
        if not self.guide.accepts_tokens(tokens):
            return False
        for token in tokens:
            self.guide.advance(token)
        return True


def _grammar() -> _OldOutlinesGrammar:
    return _OldOutlinesGrammar(Guide(Index("ab", Vocabulary(EOS, {"a": [1], "b": [2]}))))


def test_a_finished_guide_offers_eos_that_the_old_method_rejects() -> None:
    grammar = _grammar()
    assert grammar.accept_tokens("r", [1, 2])
    assert grammar.guide.get_tokens() == [EOS]  # the mask allows EOS...
    assert not grammar.accept_tokens("r", [EOS])  # ...and the old method refuses it


def test_the_fix_accepts_eos_once_finished_and_nothing_else() -> None:
    accept = eos_tolerant(_OldOutlinesGrammar.accept_tokens)
    grammar = _grammar()
    assert not accept(grammar, "r", [2])  # out of order: still refused
    assert not accept(grammar, "r", [EOS])  # EOS before the answer is complete: refused
    assert accept(grammar, "r", [1])
    assert accept(grammar, "r", [2])
    assert grammar.guide.is_finished()
    assert accept(grammar, "r", [EOS])
    assert not accept(grammar, "r", [1])  # nothing but EOS after the end


def test_the_plugin_is_registered_and_leaves_a_fixed_vllm_alone() -> None:
    from vllm.v1.structured_output.backend_outlines import OutlinesGrammar

    plugins = {e.name: e.value for e in entry_points(group="vllm.general_plugins")}
    assert plugins.get("wrapserve_compat") == "server.vllm.plugins.compat:apply"
    before = OutlinesGrammar.accept_tokens
    apply()
    assert OutlinesGrammar.accept_tokens is before  # this vLLM handles EOS itself
