"""xPONENT layouts met in public exports the reader had not seen (2026-12-04 survey).

Each fixture is typed here in the layout of the public file named in its test; none is
copied from it.

* MAGPIX exports of xPONENT 4.2 quote every cell and write no padding: a well without a
  dilution factor is ``"1(1,A1)","Background0"`` in the Dilution Factor block (one cell
  fewer than its header), where padded exports write an empty cell (seen in
  ``inst/extdata/external/Chul_IgG3_1.csv`` of mini-pw/SerolyzeR).
* xPONENT 3.1 writes the Dilution Factor header twice, the second time as
  ``"Location","Sample","1"``; and a batch stopped early lists in that block the
  protocol's wells that no acquisition block has, in a complete export that ends with
  its CRC trailer (``New_Batch_6_20160309_174224.csv`` and
  ``New_Batch_14_20140513_082522.csv``, same folder).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from cytosafe.errors import DataWarning, InputError
from cytosafe.io import read
from cytosafe.io.xponent import read_xponent

HEAD = """"Program","xPONENT","","MAGPIX"
"Build","4.2.1324.0"
"Date","3/23/2024","5:36 AM"

"SN","MAGPX00000000"
"Batch","survey-fixture"
"ProtocolPlate","Name","plate","Type","96","Plates","1"

"Samples","4","Min Events","50","Per Bead"

"Results"

"""

WELLS = [("1(1,A1)", "Background0"), ("2(1,B1)", "Serum-01"), ("3(1,C1)", "Serum-02"),
         ("4(1,D1)", "Serum-03")]  # fmt: skip


def block(name: str, header: list[str], rows: list[list[str]]) -> str:
    lines = [f'"DataType:","{name}"', ",".join(f'"{c}"' for c in header)]
    lines += [",".join(f'"{c}"' for c in row) for row in rows]
    return "\n".join(lines) + "\n\n"


def export(dilution_rows: list[list[str]], wells=WELLS) -> str:
    med = [[loc, s, str(100 + 50 * i), str(40 + 10 * i), "900"] for i, (loc, s) in enumerate(wells)]
    count = [[loc, s, "60", "55", "900"] for loc, s in wells]
    return (
        HEAD
        + block("Median", ["Location", "Sample", "AMA1", "MSP1", "Total Events"], med)
        + block("Count", ["Location", "Sample", "AMA1", "MSP1", "Total Events"], count)
        + block("Dilution Factor", ["Location", "Sample", "Dilution Factor"], dilution_rows)
        + '"DataType:","Audit Logs"\n"UserId","Date","Message"\n\n'
        + "-- CRC --\nCRC32: 00000000\n"
    )


def write(tmp_path: Path, text: str, name: str = "batch.csv") -> Path:
    path = tmp_path / name
    path.write_text(text.replace("\n", "\r\n"), encoding="utf-8")
    return path


def quietly(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return read(path)


def test_a_quoted_well_without_a_dilution_cell_is_undiluted(tmp_path):
    rows = [["1(1,A1)", "Background0"], ["2(1,B1)", "Serum-01", "100"],
            ["3(1,C1)", "Serum-02", "200"], ["4(1,D1)", "Serum-03", "400"]]  # fmt: skip
    table = quietly(write(tmp_path, export(rows)))
    dil = table.drop_duplicates("well").set_index("well")["dilution_factor"]
    assert dil.to_dict() == {"A01": 1.0, "B01": 100.0, "C01": 200.0, "D01": 400.0}
    assert len(table) == 8 and set(table["analyte"]) == {"AMA1", "MSP1"}


def test_a_row_cut_inside_its_values_is_still_refused(tmp_path):
    # Only the one empty value cell of a single-value block may be left out: a Median row
    # missing cells is a cut row, as before.
    text = export([[loc, s, "1"] for loc, s in WELLS])
    text = text.replace('"3(1,C1)","Serum-02","200","60","900"', '"3(1,C1)","Serum-02","200"')
    with pytest.raises(InputError, match="cut short") as err:
        read_xponent(write(tmp_path, text))
    assert err.value.row is not None


def test_the_repeated_dilution_header_of_xponent_31_is_not_a_well(tmp_path):
    rows = [["Location", "Sample", "1"]] + [[loc, s, "2"] for loc, s in WELLS]
    table = quietly(write(tmp_path, export(rows)))
    assert sorted(table["well"].unique()) == ["A01", "B01", "C01", "D01"]
    assert (table["dilution_factor"] == 2.0).all()


def test_wells_of_a_stopped_batch_that_were_never_acquired_are_named_not_refused(tmp_path):
    planned = [*WELLS, ("5(1,E1)", "Serum-04"), ("6(1,F1)", "Serum-05")]
    rows = [["Location", "Sample", "1"]] + [[loc, s, "1"] for loc, s in planned]
    path = write(tmp_path, export(rows))
    with pytest.warns(DataWarning, match=r"2 well\(s\) of the Dilution Factor block were never "
                      r"acquired.*well E01 \(Serum-04\).*well F01 \(Serum-05\)"):  # fmt: skip
        table = read(path)
    assert sorted(table["well"].unique()) == ["A01", "B01", "C01", "D01"]


def test_a_well_the_median_block_lacks_elsewhere_is_still_refused(tmp_path):
    # Outside the Dilution Factor block a well the Median block lacks is a cut or edited
    # file, as before.
    text = export([[loc, s, "1"] for loc, s in WELLS])
    text = text.replace('"4(1,D1)","Serum-03","60","55","900"',
                        '"4(1,D1)","Serum-03","60","55","900"\n"5(1,E1)","Serum-04","60","55","900"')  # fmt: skip
    with pytest.raises(InputError, match="Median block lacks"):
        read_xponent(write(tmp_path, text))
