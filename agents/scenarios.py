"""Writing scenarios (task types): the key stored in ``prompts.scenario`` → the task's Chinese name."""

GREETING = "greeting"
SCENARIOS: dict[str, str] = {GREETING: "祝福语", "couplet": "对联", "poem": "短诗"}


def scenario_name(scenario: str) -> str:
    return SCENARIOS.get(scenario, scenario)
