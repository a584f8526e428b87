#!/usr/bin/env python3
"""mkman.py: man pages from the programs' own --help, so the pages never drift from the code.

    deploy/man/mkman.py BUILD_DIR OUT_DIR VERSION

Runs BUILD_DIR/tapflow-probe --help (and -collector, -query; tapflow-nfdump -h) and
writes OUT_DIR/tapflow-probe.8, tapflow-collector.8, tapflow-query.1 and
tapflow-nfdump.1 in man(7) roff. The --help texts are written as man pages already:
section names in capitals at the left margin, indented paragraphs, options as an
indented line starting with '-' followed by a more indented description. A short
"usage:" text (tapflow-nfdump's) is first rewritten into that shape. Paragraphs are filled, except SYNOPSIS, EXAMPLES and lines laid
out in columns, which stay as written. A FILES and a SEE ALSO section are added where
the help has none (they name the packaged paths). Exit 0, or 1 with a message.
"""
import os
import re
import subprocess
import sys
import time

# name, section, the flag that prints the help
PAGES = [("tapflow-probe", 8, "--help"), ("tapflow-collector", 8, "--help"),
         ("tapflow-query", 1, "--help"), ("tapflow-nfdump", 1, "-h")]
VERBATIM = {"SYNOPSIS", "EXAMPLES"}
FILES = {
    "tapflow-probe": [
        ("/etc/tapflow/tapflow-probe.conf", "Settings read by the packaged service (-c)."),
        ("/lib/systemd/system/tapflow-probe.service",
         "The service: runs as user tapflow with CAP_NET_RAW only."),
        ("/lib/systemd/system/tapflow-probe@.service",
         "One more probe per instance NAME, reading /etc/tapflow/tapflow-probe-NAME.conf."),
        ("/lib/systemd/system/tapflow-mirror@.service",
         "Prepares a mirror port: up, promiscuous, no address, offloads off."),
    ],
    "tapflow-collector": [
        ("/etc/tapflow/tapflow-collector.conf", "Settings read by the packaged service (-c)."),
        ("/var/lib/tapflow", "The flow store of the packaged service."),
        ("/lib/systemd/system/tapflow-collector.service",
         "The service: runs as user tapflow, no capabilities."),
        ("/usr/lib/sysctl.d/60-tapflow-collector.conf",
         "Raises net.core.rmem_max so the receive buffer can reach --rcvbuf."),
    ],
    "tapflow-query": [("/var/lib/tapflow", "The store of the packaged collector.")],
}
SEE_ALSO = {
    "tapflow-probe": "tapflow-collector(8), tapflow-query(1), pcap-filter(7), softflowd(8)",
    "tapflow-collector": "tapflow-probe(8), tapflow-query(1), nfcapd(1)",
    "tapflow-query": "tapflow-collector(8), tapflow-probe(8), nfdump(1)",
    "tapflow-nfdump": "tapflow-query(1), tapflow-collector(8), nfdump(1)",
}


def esc(s):
    """Roff-escapes running text: backslashes, minus signs, a leading control character."""
    s = s.replace("\\", "\\e").replace("-", "\\-")
    if s.startswith((".", "'")):
        s = "\\&" + s
    return s


def opt_heading(s):
    """'-r, --read FILE' -> bold options, italic arguments."""
    out = []
    for part in s.split(", "):
        words = []
        for w in part.split(" "):
            if w.startswith("-"):
                words.append("\\fB" + esc(w) + "\\fR")
            elif w:
                words.append("\\fI" + esc(w) + "\\fR")
        out.append(" ".join(words))
    return ", ".join(out)


def indent(line):
    return len(line) - len(line.lstrip(" "))


def columnar(lines):
    """True when a paragraph is laid out in columns (two spaces inside a line)."""
    return any(re.search(r"\S  +\S", l.strip()) for l in lines)


def paragraphs(body):
    """Splits a section's lines into paragraphs (lists of lines) at blank lines."""
    para = []
    for l in body:
        if l.strip():
            para.append(l)
        elif para:
            yield para
            para = []
    if para:
        yield para


def emit_text(out, lines, verbatim):
    if verbatim or columnar(lines):
        out.append(".nf")
        base = min(indent(l) for l in lines)
        out.extend(esc(l[base:]) if l[base:] else "" for l in lines)
        out.append(".fi")
        return
    for i, l in enumerate(lines):
        t = l.strip()
        # "Config: ...", "json: ..." and the like start a line of their own.
        if i > 0 and re.match(r"^[A-Za-z][\w ()]{0,20}: ", t):
            out.append(".br")
        out.append(esc(t))


def from_usage(name, text, flag):
    """A short usage text ("usage: NAME ...", a line of description, "  -x ARG  what"
    lines) rewritten as the sectioned help the rest of this script reads. FLAG printed
    it, so it is listed too if the text leaves it out."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("usage: "):
        return text
    synopsis = lines[0][len("usage: "):]
    desc = lines[1].strip() if len(lines) > 1 and not lines[1].startswith(" ") else ""
    out = ["NAME", "    %s - %s" % (name, desc.rstrip(".") or name), "", "SYNOPSIS",
           "    " + synopsis, ""]
    if desc:
        out += ["DESCRIPTION", "    " + desc, ""]
    out.append("OPTIONS")
    for l in lines[2 if desc else 1:]:
        m = re.match(r"^ {1,4}(-\S+(?: [^ -]\S*)?) {2,}(.*)$", l)
        if m:
            out += ["", "  " + m.group(1), "        " + m.group(2)]
        elif l.strip():
            out.append("        " + l.strip())
    if not any(re.match(r"^ {1,4}%s( |$)" % re.escape(flag), l) for l in lines):
        out += ["", "  " + flag, "        Show this help and exit."]
    return "\n".join(out) + "\n"


def convert(name, section, version, date, text):
    out = ['.\\" Generated by deploy/man/mkman.py from `%s --help`: edit the program.' % name,
           '.TH %s %d "%s" "tapflow %s" "%s"' % (name.upper(), section, date, version,
           "System Administration" if section == 8 else "User Commands"),
           # Options must not be hyphenated or stretched: they are copied from here.
           ".nh", ".ad l"]
    sections = []
    for line in text.splitlines():
        line = line.rstrip().expandtabs()
        if re.match(r"^[A-Z][A-Z ]*[A-Z]$", line):
            sections.append((line, []))
        elif sections:
            sections[-1][1].append(line)
        elif line.strip():
            raise ValueError("text before the first section: %r" % line)
    names = [s for s, _ in sections]
    if names[:1] != ["NAME"] or "SYNOPSIS" not in names:
        raise ValueError("help lacks NAME or SYNOPSIS")
    if "FILES" not in names and name in FILES:
        at = names.index("SEE ALSO") if "SEE ALSO" in names else len(sections)
        sections.insert(at, ("FILES", ["FILES"]))
    if "SEE ALSO" not in names:
        sections.append(("SEE ALSO", ["    " + SEE_ALSO[name]]))
    for title, body in sections:
        out.append(".SH " + title)
        if title == "FILES" and body == ["FILES"]:
            for path, what in FILES[name]:
                out += [".TP", "\\fI" + esc(path) + "\\fR", esc(what)]
            continue
        if title == "NAME":
            out.append(esc(" ".join(l.strip() for l in body if l.strip())))
            continue
        for para in paragraphs(body):
            # An option: a line starting with '-' and a more indented description.
            heads = [i for i, l in enumerate(para)
                     if l.strip().startswith("-") and i + 1 < len(para)
                     and indent(para[i + 1]) > indent(l)]
            if heads and heads[0] == 0:
                for k, h in enumerate(heads):
                    end = heads[k + 1] if k + 1 < len(heads) else len(para)
                    out += [".TP", opt_heading(para[h].strip())]
                    emit_text(out, para[h + 1:end], False)
            else:
                out.append(".PP")
                emit_text(out, para, title in VERBATIM)
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: mkman.py BUILD_DIR OUT_DIR VERSION")
    build, outdir, version = sys.argv[1:]
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", time.time()))
    date = time.strftime("%Y-%m-%d", time.gmtime(epoch))
    os.makedirs(outdir, exist_ok=True)
    for name, section, flag in PAGES:
        try:
            text = subprocess.run([os.path.join(build, name), flag], check=True,
                                  capture_output=True, text=True).stdout
            page = convert(name, section, version, date, from_usage(name, text, flag))
        except (OSError, subprocess.CalledProcessError, ValueError) as e:
            sys.exit("mkman.py: %s: %s" % (name, e))
        path = os.path.join(outdir, "%s.%d" % (name, section))
        with open(path + ".tmp", "w") as f:
            f.write(page)
        os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()
