#!/usr/bin/env python3
# The oracle for kiln's boot configuration edits: lorax's own mkksiso
# functions, loaded from the file KILN_MKKSISO names (never part of this
# repository). Each stdin line is a JSON case; each stdout line is the
# edited configuration, as JSON. The arguments are built as mkksiso's
# MakeKickstartISO builds them.
import importlib.util
import json
import os
import sys
import tempfile

spec = importlib.util.spec_from_file_location("mkksiso", os.environ["KILN_MKKSISO"])
mk = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mk)

for line in sys.stdin:
    c = json.loads(line)
    with tempfile.TemporaryDirectory() as tmp:
        path = "isolinux/isolinux.cfg" if c["kind"] == "isolinux" else "EFI/BOOT/grub.cfg"
        os.makedirs(os.path.dirname(os.path.join(tmp, path)))
        with open(os.path.join(tmp, path), "w") as f:
            f.write(c["cfg"])
        volid = mk.udev_escape(c["volid"])
        rm_args = c["rm_args"].split(" ") if c["rm_args"] else []
        add_args = mk.SplitCmdline(c["cmdline"])
        if c["ks"]:
            add_args["inst.ks"] = ["hd:LABEL=%s:/%s" % (volid, c["ks"])]
        if c["updates"]:
            add_args["inst.updates"] = ["hd:LABEL=%s:/%s" % (volid, c["updates"])]
        replace = [tuple(r) for r in (c["replace"] or [])] + [(volid, volid)]
        if c["kind"] == "isolinux":
            mk.EditIsolinux(rm_args, add_args, replace, tmp)
        else:
            mk.EditGrub2(rm_args, add_args, replace, tmp)
        with open(os.path.join(tmp, path)) as f:
            print(json.dumps({"out": f.read()}))
