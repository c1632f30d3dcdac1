"""How the nodes read an instruction: cancel words, task-language sentences verbatim, the agent's planner."""
import pytest

from vla.agent.ros.instructions import first_manipulation, is_cancel, route


@pytest.mark.parametrize("task", ["pick", "place", "stack", "push", "put_all", "chain"])
def test_every_sampled_task_sentence_reaches_the_policy_verbatim(task):
    from vla.envs import make_env

    env = make_env(task, image_size=0)
    for seed in range(8):
        _, info = env.reset(seed=seed)
        assert [r.kind for r in route(info["instruction"])] == ["manipulate"]
        assert first_manipulation(info["instruction"]) == info["instruction"]
    env.close()


def test_compound_commands_questions_and_chatter_go_through_the_planner():
    steps = route("put the red block in the green bowl, then tell me what is left on the table")
    assert [(s.kind, s.tool) for s in steps] == [("manipulate", None), ("tool", "caption")]
    assert steps[0].text == "put the red block in the green bowl"
    (vqa,) = route("what colour is the bowl?")
    assert (vqa.tool, vqa.inputs) == ("vqa", {"question": "what colour is the bowl?"})
    (where,) = route("where is the green bowl?")
    assert (where.tool, where.inputs) == ("locate", {"text": "the green bowl"})
    (hello,) = route("hello")
    assert hello.kind == "say" and hello.text.startswith("Hello")
    assert first_manipulation("what colour is the bowl?") is None


@pytest.mark.parametrize("text", ["stop", "Stop!", " cancel ", "halt.", "abort", "freeze"])
def test_cancel_words_cancel_without_planning(text):
    assert is_cancel(text) and route(text) == []
