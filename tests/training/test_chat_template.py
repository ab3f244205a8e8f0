"""A chat template that strips the reasoning (as the DeepSeek-R1-distill family's do) is named with the file it
broke on, and ``chat_template`` replaces it for training and evaluation."""

from __future__ import annotations

import pytest

from cotdistill.data.records import DataError
from cotdistill.models import ModelError, load_tokenizer, read_chat_template
from cotdistill.training.loop import train
from cotdistill.world.tokenizer import CHAT_TEMPLATE
from tests.conftest import char_tokenizer
from tests.training.helpers import tiny_config

# the assistant turn keeps only what follows </think>, as R1-distill templates do
STRIPPING_TEMPLATE = (
    "{%- for message in messages %}{%- set content = message['content'] %}"
    "{%- if message['role'] == 'assistant' and '</think>' in content %}"
    "{%- set content = content.split('</think>')[-1] %}{%- endif %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + content + '<|im_end|>' + '\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def _stripping_student(tmp_path) -> str:
    cfg = tiny_config(tmp_path)  # builds the models and data
    tok = char_tokenizer(template=STRIPPING_TEMPLATE)
    tok.save_pretrained(cfg.student)
    return cfg.student


def test_a_template_that_strips_the_reasoning_names_the_data_file(tmp_path):
    student = _stripping_student(tmp_path)
    with pytest.raises(DataError) as err:
        train(tiny_config(tmp_path, student=student))
    message = str(err.value)
    assert message.startswith(str(tmp_path / "train.jsonl")) and "set chat_template" in message


def test_a_chat_template_file_replaces_it_and_is_saved_with_the_model(tmp_path):
    student = _stripping_student(tmp_path)
    template_file = tmp_path / "keep_think.jinja"
    template_file.write_text(CHAT_TEMPLATE)
    summary = train(tiny_config(tmp_path, student=student, chat_template=str(template_file),
                                **{"optim.max_steps": 1}))
    assert summary["steps"] == 1
    assert load_tokenizer(summary["final_model"]).chat_template == CHAT_TEMPLATE  # evaluated as it was trained


def test_chat_template_values(tmp_path):
    assert read_chat_template(CHAT_TEMPLATE) == CHAT_TEMPLATE
    with pytest.raises(ModelError, match="neither a file nor a Jinja template"):
        read_chat_template(str(tmp_path / "missing.jinja"))
    (tmp_path / "plain.txt").write_text("no template here")
    with pytest.raises(ModelError, match="holds no Jinja template"):
        read_chat_template(str(tmp_path / "plain.txt"))
