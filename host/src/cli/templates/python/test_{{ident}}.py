"""{{name}} under pytest: TestHost runs the operator as the component would,
with logs and XComs in memory, no wasm needed."""

from aileron.testing import TestHost

from {{ident}} import {{ident}}


def test_greets_and_shares_the_name():
    host = TestHost()
    result = host.run({{ident}}, {"name": "Ada"})
    assert (result.kind, result.value) == ("success", "Hello, Ada!")
    assert result.logs == [("info", "Hello, Ada!")]
    assert host.xcom("{{name}}", key="name") == "Ada"
