"""One verdict whatever the session kind: the same environment, the same error and message.

Each case is a real environment that hands over one odd value at its third step (environment 2
of 3, the first of bridge server 1); it runs in process (`gymnasium`) and through the bridge
(`gymnasium-subprocess`). A value the rules of `spec.host_values` refuse must raise the same
`ContractViolation` with the same message in both, after which a reset makes the session usable
again; a legal value (a big-endian float32 observation, a 0-d reward, a NumPy bool flag, a
`uint16` Box) must pass in both. Finding the offending entries is vectorised: one NaN in a
1,000,000-entry observation is reported with the reference's message.
"""

import numpy as np
import pytest
import torch

from checked_rl.runtime.contract import ContractViolation, Transition, check_transition
from checked_rl.runtime.sessions import EnvironmentStepError, make_session
from checked_rl.spec import contract as spec_contract
from tests.faulty_envs import HANDED

SEED = 10
FAULTY = 2
ACTIONS = torch.tensor([0, 1, 1])
KINDS = ("gymnasium", "gymnasium-subprocess")

STEP = "[env 2, step 2]"
REFUSED = {
    "reward:str": f"reward{STEP} has dtype str, expected a real number",
    "reward:bytes": f"reward{STEP} has dtype bytes, expected a real number",
    "reward:complex": f"reward{STEP} has dtype complex, expected a real number",
    "reward:none": f"reward{STEP} has dtype NoneType, expected a real number",
    "reward:dict": f"reward{STEP} has dtype dict, expected a real number",
    "reward:array": f"reward{STEP} has shape (2,), expected (), a real number",
    "reward:size-1 array": f"reward{STEP} has shape (1,), expected (), a real number",
    "reward:huge int": f"reward{STEP} = an int beyond float64 is not finite",
    "terminated:int": f"terminated{STEP} has dtype int, expected bool",
    "terminated:str": f"terminated{STEP} has dtype str, expected bool",
    "terminated:array": f"terminated{STEP} has shape (2,), expected (), a bool",
    "truncated:none": f"truncated{STEP} has dtype NoneType, expected bool",
    "truncated:float": f"truncated{STEP} has dtype float, expected bool",
    "observation:list": f"next_observation{STEP} has dtype float64, expected float32",
    "observation:ragged": f"next_observation{STEP} has dtype list, expected float32",
    "observation:float64": f"next_observation{STEP} has dtype float64, expected float32",
    "observation:int32": f"next_observation{STEP} has dtype int32, expected float32",
    "observation:scalar": f"next_observation{STEP} has shape (), expected (3,)",
    "observation:str": f"next_observation{STEP} has shape (), expected (3,)",
    "observation:object": f"next_observation{STEP} has dtype object, expected float32",
    "result:4-tuple": f"step result{STEP} = tuple of 4 is not (observation, reward, terminated, "
    "truncated, info)",
    "result:list": f"step result{STEP} = list is not (observation, reward, terminated, "
    "truncated, info)",
    "result:none": f"step result{STEP} = NoneType is not (observation, reward, terminated, "
    "truncated, info)",
}
ACCEPTED = sorted(set(HANDED) - set(REFUSED))


def session(kind: str, name: str, **make_kwargs):
    options = {"num_servers": 2, "timeout": 30.0} if kind == "gymnasium-subprocess" else {}
    return make_session(
        kind,
        f"tests.faulty_envs:{name}",
        num_envs=3,
        seed=SEED,
        make_kwargs={"fault_seeds": [SEED + FAULTY], **make_kwargs},
        **options,
    )


def verdict(kind: str, name: str, **make_kwargs) -> tuple[str, str]:
    """(exception type, message) of the fault step, or ("passed", "") after 5 steps; checks
    that a reset makes a refusing session usable again."""
    with session(kind, name, **make_kwargs) as checked:
        try:
            for _ in range(5):
                checked.step_checked(ACTIONS)
        except (ContractViolation, EnvironmentStepError) as error:
            checked.reset(seed=SEED + 100)
            checked.step_checked(ACTIONS)
            return type(error).__name__, str(error).split(" (bridge server")[0]
    return "passed", ""


@pytest.mark.parametrize("what", sorted(REFUSED))
def test_a_refused_value_gets_one_verdict_in_both_kinds(outcome, what):
    verdicts = {kind: verdict(kind, "Hands-v0", what=what) for kind in KINDS}
    expected = ("ContractViolation", f"contract violation: {REFUSED[what]}")
    assert verdicts == dict.fromkeys(KINDS, expected)
    outcome.refused()


@pytest.mark.parametrize("what", ACCEPTED)
def test_a_legal_value_passes_in_both_kinds(outcome, what):
    verdicts = {kind: verdict(kind, "Hands-v0", what=what) for kind in KINDS}
    assert verdicts == dict.fromkeys(KINDS, ("passed", ""))
    outcome.survived()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("BigEndian-v0", ("passed", "")),
        ("Counter16-v0", ("passed", "")),
        (
            "OutOfBox-v0",
            (
                "ContractViolation",
                "contract violation: next_observation[env 2, "
                "step 2] entry 0 = 100.0 is out of bounds [-10.0, 10.0]",
            ),
        ),
    ],
)
def test_dtypes_and_byte_orders_get_one_verdict(outcome, name, expected):
    verdicts = {kind: verdict(kind, name) for kind in KINDS}
    assert verdicts == dict.fromkeys(KINDS, expected)
    outcome.survived() if expected[0] == "passed" else outcome.refused()


RESETS = {
    "bare": "reset result[env 2] = ndarray of shape (3,) is not (observation, info)",
    "list": "reset result[env 2] = list is not (observation, info)",
    "float64": "observation[env 2] has dtype float64, expected float32",
}


@pytest.mark.parametrize("what", sorted(RESETS))
def test_a_bad_reset_gets_one_verdict_in_both_kinds(outcome, what):
    messages = {}
    for kind in KINDS:
        with pytest.raises(ContractViolation) as caught:
            session(kind, "ResetHands-v0", what=what, disable_env_checker=True).close()
        messages[kind] = str(caught.value)
    assert messages == dict.fromkeys(KINDS, f"contract violation: {RESETS[what]}")
    outcome.refused()


AUTO_RESETS = {
    "float64": (
        "ContractViolation",
        "contract violation: observation[env 2] has dtype float64, expected float32",
    ),
    "bare": (
        "ContractViolation",
        "contract violation: reset result[env 2] = ndarray of shape "
        "(3,) is not (observation, info)",
    ),
}


@pytest.mark.parametrize("what", sorted(AUTO_RESETS))
def test_a_bad_auto_reset_gets_one_verdict_in_both_kinds(outcome, what):
    options = {"what": what, "first_faulty_reset": 2, "episode_length": 2}
    verdicts = {kind: verdict(kind, "ResetHands-v0", **options) for kind in KINDS}
    assert verdicts == dict.fromkeys(KINDS, AUTO_RESETS[what])
    outcome.refused()


def test_one_nan_in_a_million_entries_is_reported_like_the_reference(outcome):
    size = 1_000_000
    contract = spec_contract.Contract(
        (size,), n_actions=2, observation_low=-1.0, observation_high=1.0
    )
    observation = torch.zeros(2, size)
    successor = observation.clone()
    successor[1, 765_432] = float("nan")
    successor[0, 3] = 2.0
    transition = Transition(
        observation,
        torch.zeros(2, dtype=torch.int64),
        torch.ones(2),
        successor,
        torch.zeros(2, dtype=torch.bool),
        torch.zeros(2, dtype=torch.bool),
    )
    with pytest.raises(ContractViolation) as caught:
        check_transition(contract, transition, step=9)
    found = [str(v) for v in caught.value.violations]
    assert found == [
        "contract violation: next_observation[env 0, step 9] entry 3 = 2.0 is out of bounds "
        "[-1.0, 1.0]",
        "contract violation: next_observation[env 1, step 9] entry 765432 = nan is not finite",
    ]
    small = Transition(
        *(
            field[:, :1000] if field.ndim == 2 else field
            for field in (
                observation,
                transition.action,
                transition.reward,
                successor,
                transition.terminated,
                transition.truncated,
            )
        )
    )
    small_contract = contract.__class__(
        (1000,), n_actions=2, observation_low=-1.0, observation_high=1.0
    )
    with pytest.raises(ContractViolation) as caught:
        check_transition(small_contract, small, step=9)
    reference = spec_contract.violations(small_contract, small.numpy(), step=9)
    assert [str(v) for v in caught.value.violations] == [str(v) for v in reference]
    assert np.isnan(caught.value.violations[-1].value) or len(reference) == 1
    outcome.refused()
