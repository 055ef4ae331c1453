"""The text a model is given for a benchmark task.

- `completion` (base models): the task's raw prompt, which the model continues. A whole-program
  benchmark's raw prompt (MBPP: the statement, then the tests) ends in assert lines, which a base model
  continues with more asserts, so its completion prompt is bigcode-evaluation-harness's instead: the
  statement and the first test inside a docstring, after which the program starts
  (`program_completion_prompt`). A completion prompt's trailing whitespace is held back from the model
  and taken off the front of the completion again (`split_trailing_space`, `rejoin`): benchmark prompts end in a newline, while BPE tokenizers, ours and Qwen's alike, merge a
  newline with the next line's indentation, so a prompt that ends in a bare newline token asks the model
  to continue from a token boundary it never saw in training (bigcode-evaluation-harness strips
  HumanEval prompts for the same reason).
- `instruct` (models trained with the project's schema, data/prompts.py): template variant 0,
  `Instruction: {instruction}\\nInput: {input}\\nOutput: `, optionally after the language token.
  instruction = the task's own instruction, or "Complete the following {Language} function." when it
  has none (HumanEval, HumanEval-X); input = the task's prompt (the code the completion continues).
  Benchmarks whose completion is a whole program (MBPP): instruction = the problem statement and
  input = the tests the program must pass (the statement is not repeated).
- `chat` (instruction-tuned models with a chat template, e.g. SmolLM2-Instruct): one user message,
  the instruct format's instruction and its input in a fenced code block, rendered by the tokenizer's
  own chat template with the assistant's turn opened; the assistant's answer is started for it with
  the code fence and the task's prompt (as evalplus and bigcode-evaluation-harness's instruct tasks
  start the response), so the completion continues the same code as in `completion` and is judged
  alike; the closing fence ends it (every language's stop rule has it). Whole-program benchmarks
  start the answer with the fence alone.
"""

from __future__ import annotations

from ..benchmarks.base import Task
from ..data.prompts import display_name, language_token, render_prompt

PROMPT_FORMATS = ("instruct", "completion", "chat")
PREFIX_MODES = ("auto", "on", "off")
MBPP_TESTS_MARKER = "Your code should pass these tests:"


def default_instruction(language: str) -> str:
    return f"Complete the following {display_name(language)} function."


def task_instruction_and_input(task: Task, full_program: bool) -> tuple[str, str]:
    """(instruction, input) of the instruct format for a task."""
    if full_program and task.instruction and MBPP_TESTS_MARKER in task.prompt:
        tests = task.prompt.split(MBPP_TESTS_MARKER, 1)[1].strip("\n")
        return f"{task.instruction} {MBPP_TESTS_MARKER}", tests
    return task.instruction or default_instruction(task.language), task.prompt


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def chat_prompt(task: Task, tokenizer, full_program: bool) -> str:
    """The `chat` format's text: the tokenizer's chat template around one user message, then the
    start of the assistant's answer (a fence, and the task's code unless it is a whole program)."""
    instruction, inp = task_instruction_and_input(task, full_program)
    fence = "```" + task.language
    user = f"{instruction}\n\n{fence}\n{inp.rstrip()}\n```"
    text = tokenizer.apply_chat_template([{"role": "user", "content": user}], tokenize=False,
                                         add_generation_prompt=True)
    return f"{text}{fence}\n" + ("" if full_program else task.prompt)


def program_completion_prompt(task: Task) -> str:
    """bigcode-evaluation-harness's MBPP prompt: the statement and the first test inside a docstring
    (three double quotes, a line each), then a new line. A task without the tests marker keeps its
    raw prompt."""
    if not (task.instruction and MBPP_TESTS_MARKER in task.prompt):
        return task.prompt
    tests = [line for line in task.prompt.split(MBPP_TESTS_MARKER, 1)[1].splitlines() if line.strip()]
    return f'"""\n{task.instruction}\n{tests[0] if tests else ""}\n"""\n'


def build_prompt(task: Task, prompt_format: str, language_prefix: bool, full_program: bool = False,
                 tokenizer=None) -> str:
    if prompt_format == "completion":
        text = program_completion_prompt(task) if full_program else task.prompt
        return (language_token(task.language) if language_prefix else "") + text
    if prompt_format == "chat":
        if tokenizer is None or not has_chat_template(tokenizer):
            raise ValueError("prompt format 'chat' needs a tokenizer with a chat template")
        return chat_prompt(task, tokenizer, full_program)
    if prompt_format != "instruct":
        raise ValueError(f"unknown prompt format {prompt_format!r}; known: {', '.join(PROMPT_FORMATS)}")
    instruction, inp = task_instruction_and_input(task, full_program)
    return render_prompt(instruction, inp, task.language, variant=0, language_prefix=language_prefix)


def split_trailing_space(prompt: str) -> tuple[str, str]:
    """(prompt without its trailing whitespace, that whitespace)."""
    body = prompt.rstrip()
    return body, prompt[len(body):]


def rejoin(generated: str, held: str) -> str:
    """The completion of the original prompt: the generated text without the held-back whitespace it
    starts with. If the model did not start with it (e.g. it wrote a comment on the prompt's last line),
    the text is kept whole: the program is then prompt + text, one extra line break at most."""
    return generated[len(held):] if held and generated.startswith(held) else generated


def has_language_token(tokenizer, language: str) -> bool:
    """Whether the tokenizer encodes the language token as one token (it was added to its vocabulary)."""
    ids = tokenizer(language_token(language), add_special_tokens=False)["input_ids"]
    return len(ids) == 1 and ids[0] != getattr(tokenizer, "unk_token_id", None)


def resolve_language_prefix(mode: str, tokenizer, languages: list[str]) -> dict[str, bool]:
    """Per language: whether prompts start with the language token (`auto`: when the tokenizer has it)."""
    if mode not in PREFIX_MODES:
        raise ValueError(f"unknown --language-prefix {mode!r}; known: {', '.join(PREFIX_MODES)}")
    if mode == "auto":
        return {lang: has_language_token(tokenizer, lang) for lang in languages}
    return {lang: mode == "on" for lang in languages}
