"""Two endpoints in the browser: their models appear grouped, and each request reaches its
own endpoint with its own key; the conversation's max-tokens setting is sent."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from tinychat_chat.app import create_app as create_chat_app
from tinychat_gateway.app import create_app as create_gateway_app
from tinychat_gateway.config import GatewaySettings

from tests.fakes.openai_upstream import FakeOpenAI, Reply
from tests.support.chat_service import chat_settings_for

from .helpers import last_answer, open_app, send, wait_for_answers
from .stack import FakeDownstream, Stack

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]

CLOUD_KEY = "sk-cloud-key-1111"
LOCAL_KEY = "sk-local-key-2222"


class TwoEndpointStack(Stack):
    """The browser stack with chat-service serving two endpoints: `upstream` ("Cloud") and
    `local` ("Local")."""

    local: FakeOpenAI

    async def _start(self) -> None:
        self.upstream = await FakeOpenAI(models=["gpt-x", "o-mini"], api_key=CLOUD_KEY).start()
        self.local = await FakeOpenAI(models=["llama3:8b", "qwen3"], api_key=LOCAL_KEY).start()
        self.downstream = await FakeDownstream().start()
        endpoints = {
            "endpoints": [
                {"name": "cloud", "label": "Cloud", "url": self.upstream.url, "api_key": CLOUD_KEY},
                {
                    "name": "local",
                    "label": "Local",
                    "url": self.local.url,
                    "api_key": LOCAL_KEY,
                    "titles": True,
                },
            ]
        }
        chat_url = await self._serve(
            create_chat_app(chat_settings_for(self.upstream, chat_endpoints=json.dumps(endpoints)))
        )
        self.url = await self._serve(
            create_gateway_app(
                GatewaySettings(
                    chat_service_url=chat_url,
                    image_service_url=self.downstream.base_url,
                    rlm_service_url=self.downstream.base_url,
                    config_cache_seconds=0,
                )
            )
        )

    async def _stop(self) -> None:
        await super()._stop()
        await self.local.stop()

    def reset(self) -> None:
        super().reset()
        self.run(lambda: self.local.history.clear())


@pytest.fixture(scope="module")
def stack() -> Iterator[TwoEndpointStack]:
    running = TwoEndpointStack().start()
    yield running
    running.stop()


def test_models_are_grouped_by_endpoint_and_each_request_reaches_its_own(page, stack):
    open_app(page)
    groups = page.eval_on_selector_all(
        "#model-select optgroup",
        "gs => gs.map(g => [g.label, [...g.querySelectorAll('option')].map(o => [o.value, o.textContent])])",
    )
    assert groups == [
        ["Cloud", [["cloud/gpt-x", "gpt-x"], ["cloud/o-mini", "o-mini"]]],
        ["Local", [["local/llama3:8b", "llama3:8b"], ["local/qwen3", "qwen3"]]],
    ]
    stack.run(lambda: stack.local.enqueue(Reply(text="From the local server.")))
    page.select_option("#model-select", "local/llama3:8b")
    send(page, "Who are you?")
    wait_for_answers(page, 1)
    assert "From the local server." in last_answer(page).inner_text()
    local = stack.run(lambda: (list(stack.local.history), list(stack.local.headers)))
    assert local[0][0]["model"] == "llama3:8b" and local[0][0]["stream"] is True
    assert all(h["Authorization"] == f"Bearer {LOCAL_KEY}" for h in local[1])

    stack.run(lambda: stack.upstream.enqueue(Reply(text="From the cloud.")))
    page.select_option("#model-select", "cloud/o-mini")
    send(page, "And you?")
    wait_for_answers(page, 2)
    assert "From the cloud." in last_answer(page).inner_text()
    cloud = stack.run(lambda: (list(stack.upstream.history), list(stack.upstream.headers)))
    assert cloud[0][-1]["model"] == "o-mini"
    assert cloud[1][-1]["Authorization"] == f"Bearer {CLOUD_KEY}"
    # The local endpoint was asked for the answer (and then a title), never for the cloud's.
    asked = stack.run(lambda: [h["model"] for h in stack.local.history])
    assert set(asked) == {"llama3:8b"}


def test_a_new_conversation_gets_its_title_from_the_model_where_its_endpoint_allows(page, stack):
    stack.run(
        lambda: stack.local.enqueue(Reply(text="Sure, here is a plan."), Reply(text="Lisbon Weekend Plan"))
    )
    open_app(page)
    page.select_option("#model-select", "local/qwen3")
    send(page, "Plan a weekend in Lisbon for me please")
    wait_for_answers(page, 1)
    page.wait_for_function(
        "() => document.querySelector('#chat-title').textContent === 'Lisbon Weekend Plan'"
    )
    assert page.locator("#conversation-list").inner_text().count("Lisbon Weekend Plan") == 1
    sent = stack.run(lambda: stack.local.history[-1])
    assert sent["stream"] is False and sent["model"] == "qwen3"

    # The cloud endpoint bills: no title call, the first message stays the title.
    page.keyboard.press("Control+k")
    stack.run(lambda: stack.upstream.enqueue(Reply(text="ok")))
    page.select_option("#model-select", "cloud/gpt-x")
    send(page, "Quick question about taxes")
    wait_for_answers(page, 1)
    assert page.locator("#chat-title").inner_text() == "Quick question about taxes"
    assert stack.run(lambda: len(stack.upstream.history)) == 1


def test_the_max_tokens_setting_is_sent_with_the_request(page, stack):
    open_app(page)
    page.click("#open-settings")
    page.fill("#max-tokens", "256")
    page.press("#max-tokens", "Tab")
    send(page, "Keep it short")
    wait_for_answers(page, 1)
    assert stack.run(lambda: stack.upstream.history[-1]["max_tokens"]) == 256
