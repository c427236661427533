"""The engine's promises around the converter: findings instead of tracebacks, and no
output unless it compiles, converts to itself and is formatted."""

import libcst
import pytest

import migrate.engine
from convert_stand_in import CONVERTED_SCRIPT, NO_LOOP_SCRIPT, TRAINING_SCRIPT, convert_code
from migrate.engine import convert_bytes, convert_file, convert_source
from migrate.findings import ConversionResult, Finding, Severity, Status
from migrate.verify import VerifyError, load_converter


@pytest.fixture(autouse=True)
def stand_in_converter(monkeypatch):
    monkeypatch.setattr(migrate.engine, "convert_code", convert_code)


def use_converter(monkeypatch, converter):
    monkeypatch.setattr(migrate.engine, "convert_code", converter)


def only_finding(result: ConversionResult) -> Finding:
    assert len(result.findings) == 1, result.findings
    return result.findings[0]


def test_a_converted_script_is_checked_and_formatted_with_black():
    result = convert_source(TRAINING_SCRIPT, "train.py")

    assert result.status is Status.CONVERTED
    assert result.output == CONVERTED_SCRIPT
    assert [finding.code for finding in result.findings] == ["MIG101"]


def test_without_format_the_output_is_the_converters():
    result = convert_source(TRAINING_SCRIPT, "train.py", format=False)

    assert result.output == "# converted for runtime\n" + TRAINING_SCRIPT


def test_the_target_reaches_the_converter():
    result = convert_source(TRAINING_SCRIPT, "train.py", target="lightning")

    assert result.output.startswith("# converted for lightning\n")


def test_an_unchanged_script_passes_through():
    result = convert_source(CONVERTED_SCRIPT, "train.py")

    assert result.status is Status.UNCHANGED
    assert result.output == CONVERTED_SCRIPT


def test_a_script_without_a_training_loop_has_no_output():
    result = convert_source(NO_LOOP_SCRIPT, "tool.py")

    assert result.status is Status.NO_TRAINING_LOOP
    assert result.output is None


def test_a_syntax_error_is_mig901_at_its_line_and_column():
    result = convert_source("import torch\nx = (1,\n", "bad.py")

    assert result.status is Status.FAILED
    assert result.output is None
    finding = only_finding(result)
    assert (finding.path, finding.line, finding.col, finding.code) == ("bad.py", 2, 5, "MIG901")
    assert finding.severity is Severity.ERROR
    assert "never closed" in finding.message


def test_code_python_accepts_but_libcst_cannot_parse_is_mig901(monkeypatch):
    def libcst_refuses(source, path, target):
        return libcst.parse_module("def f(:\n    pass\n")

    use_converter(monkeypatch, libcst_refuses)

    finding = only_finding(convert_source(TRAINING_SCRIPT, "new_syntax.py"))

    assert finding.code == "MIG901"
    assert finding.message.startswith("libcst cannot parse this code")


def test_a_null_byte_is_a_syntax_error():
    finding = only_finding(convert_source("x = 1\ny = 2\0\n", "nul.py"))

    assert finding.code == "MIG901"
    assert "null bytes" in finding.message


def test_output_that_does_not_compile_is_mig906_and_not_returned(monkeypatch):
    def broken(source, path, target):
        return ConversionResult(path, Status.CONVERTED, "def f(:\n    pass\n")

    use_converter(monkeypatch, broken)

    result = convert_source(TRAINING_SCRIPT, "train.py")

    assert result.status is Status.FAILED
    assert result.output is None
    assert only_finding(result).code == "MIG906"


def test_output_that_changes_when_converted_again_is_mig907_and_not_returned(monkeypatch):
    def never_done(source, path, target):
        return ConversionResult(path, Status.CONVERTED, source + "x = 1\n")

    use_converter(monkeypatch, never_done)

    result = convert_source(TRAINING_SCRIPT, "train.py")

    assert result.status is Status.FAILED
    assert result.output is None
    finding = only_finding(result)
    assert (finding.code, finding.severity) == ("MIG907", Severity.ERROR)
    assert "changes its line 8" in finding.message


def test_output_the_converter_cannot_parse_again_is_mig906(monkeypatch):
    def output_libcst_rejects(source, path, target):
        if source.startswith("#"):
            libcst.parse_module("def f(:\n    pass\n")
        return ConversionResult(path, Status.CONVERTED, "# done\n" + source)

    use_converter(monkeypatch, output_libcst_rejects)

    assert only_finding(convert_source(TRAINING_SCRIPT, "train.py")).code == "MIG906"


def test_a_reconversion_that_only_changes_formatting_is_idempotent(monkeypatch):
    def reformats(source, path, target):
        if source.startswith("# done"):
            return ConversionResult(path, Status.CONVERTED, source.replace(" = ", "="))
        return ConversionResult(path, Status.CONVERTED, "# done\n" + source)

    use_converter(monkeypatch, reformats)

    assert convert_source(TRAINING_SCRIPT, "train.py").status is Status.CONVERTED


def test_a_converter_crash_is_mig908_not_a_traceback(monkeypatch):
    def crashes(source, path, target):
        raise KeyError("model")

    use_converter(monkeypatch, crashes)

    result = convert_source(TRAINING_SCRIPT, "train.py")

    assert result.status is Status.FAILED
    finding = only_finding(result)
    assert finding.code == "MIG908"
    assert "KeyError" in finding.message


def test_a_rejected_output_keeps_the_converters_findings(monkeypatch):
    def never_done(source, path, target):
        info = Finding(path, 1, 1, "MIG101", Severity.INFO, "converted train loop")
        return ConversionResult(path, Status.CONVERTED, source + "x = 1\n", [info])

    use_converter(monkeypatch, never_done)

    result = convert_source(TRAINING_SCRIPT, "train.py")

    assert [finding.code for finding in result.findings] == ["MIG101", "MIG907"]


def test_bytes_that_are_not_utf8_are_mig902_at_the_bad_byte():
    result = convert_bytes("x = 1\ny = 'é'\n".encode("latin-1"), "latin.py")

    assert result.status is Status.FAILED
    finding = only_finding(result)
    assert (finding.line, finding.col, finding.code) == (2, 6, "MIG902")
    assert "not UTF-8 (byte 0xe9" in finding.message


def test_a_utf8_byte_order_mark_is_accepted():
    result = convert_bytes(b"\xef\xbb\xbf" + TRAINING_SCRIPT.encode(), "bom.py")

    assert result.output == CONVERTED_SCRIPT


@pytest.mark.parametrize("data", [b"", b"\n\n  \n"])
def test_an_empty_file_is_a_mig903_warning_with_nothing_to_convert(data):
    result = convert_bytes(data, "__init__.py")

    assert result.status is Status.NO_TRAINING_LOOP
    finding = only_finding(result)
    assert (finding.code, finding.severity) == ("MIG903", Severity.WARNING)
    assert finding.message == "empty file, nothing to convert"


def test_too_many_bytes_are_mig904(monkeypatch):
    monkeypatch.setattr(migrate.engine, "MAX_BYTES", 10)

    result = convert_bytes(TRAINING_SCRIPT.encode(), "big.py")

    assert result.status is Status.FAILED
    assert only_finding(result).code == "MIG904"


def test_a_huge_file_is_mig904_before_it_is_read(tmp_path, monkeypatch):
    huge = tmp_path / "huge.py"
    with huge.open("wb") as stream:
        stream.truncate(migrate.engine.MAX_BYTES + 1)
    monkeypatch.setattr(type(huge), "read_bytes", lambda self: pytest.fail("read a huge file"))

    finding = only_finding(convert_file(huge))

    assert finding.code == "MIG904"
    assert "too large" in finding.message


def test_a_file_that_cannot_be_read_is_mig905(tmp_path):
    finding = only_finding(convert_file(tmp_path))

    assert finding.code == "MIG905"
    assert finding.path == str(tmp_path)


def test_a_file_is_converted_under_its_own_path(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(TRAINING_SCRIPT)

    result = convert_file(script)

    assert result.path == str(script)
    assert result.output == CONVERTED_SCRIPT
    assert {finding.path for finding in result.findings} == {str(script)}


def test_verify_converts_in_memory_through_the_engine():
    assert load_converter()(TRAINING_SCRIPT) == CONVERTED_SCRIPT


def test_verify_says_why_a_script_cannot_be_converted():
    with pytest.raises(VerifyError, match=r"cannot convert the original: <stdin>:1:5: MIG901"):
        load_converter()("x = (\n")


def test_verify_says_when_there_is_no_training_loop():
    with pytest.raises(VerifyError, match=r"cannot convert the original: no-training-loop"):
        load_converter()(NO_LOOP_SCRIPT)
