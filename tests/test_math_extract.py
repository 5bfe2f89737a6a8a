"""Where the final answer is read from (verifiers.extract), one rule per test."""

from verifiers.extract import answer_section, boxed_contents, extract


def test_only_text_after_last_think_is_judged():
    text = "<think>maybe \\boxed{3}</think> so <think>x</think> The answer is \\boxed{5}."
    assert answer_section(text).strip() == "so <think>x</think> The answer is \\boxed{5}.".split("</think>")[-1].strip()
    assert extract(text).answers == ["5"]


def test_box_inside_think_only_is_no_answer():
    assert extract("<think>it is \\boxed{3}</think>\nI am not sure.").answers == []


def test_unclosed_think_is_no_answer():
    assert extract("<think>long reasoning \\boxed{3} and then the budget ran out").answers == []


def test_last_answer_tag_wins():
    text = "<answer>1</answer> hmm <answer>The result: \\boxed{7}</answer>"
    assert extract(text).answers == ["7"]
    assert extract("<think>a</think><answer>42</answer>").answers == ["42"]


def test_boxes_are_brace_matched_and_escaped_braces_ignored():
    assert boxed_contents("\\boxed{\\frac{\\sqrt{3}}{2}} and \\fbox{\\{1,2\\}}") == [
        "\\frac{\\sqrt{3}}{2}", "\\{1,2\\}"]
    assert boxed_contents("\\boxed 5 apples") == ["5"]


def test_empty_or_unclosed_last_box_is_no_answer():
    assert extract("so \\boxed{}").answers == []
    assert extract("\\boxed{4} then \\boxed{12").answers == []
    assert extract("the result is \\boxed{12").source == "none"


def test_every_box_is_reported_for_the_hedge_check():
    assert extract("\\boxed{3} or \\boxed{4}").answers == ["3", "4"]


def test_answer_phrases():
    said = "Final Answer: The final answer is $\\frac{1}{2}$. I hope it is correct."
    assert extract(said).answers == ["\\frac{1}{2}"]
    assert extract("so the answer is 17.").answers == ["17"]
    assert extract("**Answer:** 2.5").answers == ["2.5"]
    assert extract("Answer: $x = 3$").answers == ["x = 3"]
    assert extract("She earns 9 * 2 = 18 dollars.\n#### 18").answers == ["18"]


def test_the_last_phrase_wins():
    assert extract("The answer is 3. Wait. The answer is 4.").answers == ["4"]


def test_no_last_number_fallback_unless_asked():
    text = "We compute 3 + 4 = 7 and stop there without concluding anything"
    assert extract(text).answers == []
    found = extract(text, last_number_fallback=True)
    assert (found.answers, found.source) == (["7"], "last_number")


def test_bare_short_answer_is_accepted_long_prose_is_not():
    assert extract("$\\frac{3}{4}$").answers == ["\\frac{3}{4}"]
    assert extract("I think it could be many things, hard to say").answers == []


def test_linear_time_on_huge_input():
    import time

    text = "\\boxed{" * 20000 + "x" + "{" * 50000
    start = time.perf_counter()
    extract(text)
    assert time.perf_counter() - start < 2.0


def test_minerva_closings_that_name_the_quantity_give_what_follows_is():
    assert extract("Final Answer: The largest $n$ is 34. I hope it is correct.").answers == ["34"]
    assert extract("Final Answer: The volume of $ABCDEFGH$ is 120.").answers == ["120"]
    assert extract("Final Answer: The sum of the roots is equal to $-3$.").answers == ["-3"]
    assert extract("Final Answer: The values are 3 or 4.").answers == ["3 or 4"]  # a hedge stays one
    # only after "Answer:": a phrase "the answer is" already says where the answer is
    assert extract("so the answer is the number that is 5").answers == ["the number that is 5"]


def test_bare_math_with_no_prose_word_is_an_answer():
    found = extract("\\frac{x^2}{16} + \\frac{y^2}{12} = \\frac14")
    assert (found.answers, found.source) == (["\\frac{x^2}{16} + \\frac{y^2}{12} = \\frac14"], "bare")
    assert extract("the ellipse x^2/16 + y^2/12 = 1/4 is what we wanted to find").answers == []


def test_a_last_line_that_is_one_display_of_math_is_the_answer():
    for text in ("Substituting back we find\n$$x = 7$$", "Substituting back we find\n\\[\nx = 7\n\\]",
                 "Substituting back we find\n\\[ x = 7 \\].", "Thus:\n$x = 7$"):
        found = extract(text)
        assert (found.answers, found.source) == (["x = 7"], "last_math"), text
    assert extract("We find $x = 7$ and then stop to check the other case.").answers == []  # prose on the line
    assert extract("So\n$$\\text{the total is } 7$$").answers == []  # prose inside the display
    assert extract("First $x = 1$\n$$ and $$ y = 2 $$").answers == []  # not one block


def test_final_answer_after_boxed_steps_wins_over_them():
    text = "Interest: $\\boxed{255}$. Total $10,200 + 255$. Final Answer: The final answer is $10,455$."
    assert extract(text).answers == ["10,455"]
    # any weaker phrase after the boxes ("check our answer: ...") leaves the boxes as the answer
    checked = "So $17^{-1} \\equiv \\boxed{44}$. We may check our answer: $17 \\cdot 44 = 748$."
    assert extract(checked).answers == ["44"]
    assert extract("Final Answer: see below. \\boxed{7}").answers == ["7"]  # a box after the phrase


def test_answer_followed_by_math_and_answers_stated_after_the_math():
    assert extract("Answer \\[ \n 9 \n \\]").answers == ["9"]
    assert extract("Answer $ 9 $").answers == ["9"]
    assert extract("Checking every case, $7$ is our answer, as claimed.").answers == ["7"]
    assert extract("Therefore $x \\geq 5$ is the solution.").answers == ["x \\geq 5"]
    assert extract("The solution is $x != 5$").answers == ["x != 5"]
    # "is the solution" inside the reasoning is not a final statement
    assert extract("Here $x = -3$ is the solution of the first equation, and we go on with the second.").answers == []


def test_a_chat_turn_marker_ends_the_answer():
    text = "Final Answer: The final answer is $19$. <|im_start|>user\nNew question: \\boxed{3}"
    assert extract(text).answers == ["19"]


def test_quotes_around_a_stated_answer_are_dropped():
    from verifiers.math import judge

    found = extract('Final Answer: The final answer is "$12$ and $13$".').answers
    assert len(found) == 1 and '"' not in found[0]
    assert judge('Final Answer: The final answer is "$12$ and $13$".', "12, 13").correct
