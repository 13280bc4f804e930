-- mlink.lua - Wireshark / tshark dissector for mlink's topology (discovery) protocol,
-- version 1 (docs/PROTOCOL.md; the codec is proto/topo/codec.cpp).
--
--   tshark -X lua_script:/usr/share/mlink/wireshark/mlink.lua -r cap.pcap -Y mlink.topo
--
-- or copy it to ~/.local/lib/wireshark/plugins/. UDP port 28012 is claimed (preference
-- mlink.topo.udp_port), and a heuristic finds the magic "MLNK" on any other UDP port.
-- Every field is mlink.topo.*. The MAC is verified when preference mlink.topo.key_file
-- names the key file ([discovery] key_file), by mlink_hmac.lua from this file's directory
-- (Wireshark's Lua has no hash functions); else it is only shown. Malformed packets are
-- expert info, never Lua errors: every read below is checked against the bytes there are.

local p = Proto("mlink.topo", "mlink topology protocol")

local hmac = nil  -- function(key, message) -> 32 bytes, when mlink_hmac.lua is there
do
  local src = debug.getinfo(1, "S").source
  local dir = src:sub(1, 1) == "@" and src:sub(2):match("^(.*[/\\])") or ""
  local ok, m = pcall(dofile, dir .. "mlink_hmac.lua")
  if ok and type(m) == "table" then hmac = m.hmac end
end

local HEADER, MAC, MAX_PACKET, NODE_ID = 52, 32, 1232, 32

local msg_types = { [1] = "HELLO", [2] = "LINKS", [3] = "LINKS_REQUEST (reserved)",
                    [4] = "BYE (reserved)" }
local tlv_names = { [0x0001] = "ML_ADDR", [0x0002] = "LINK_ADDR", [0x0003] = "SEEN",
                    [0x0004] = "HOLD_TIME", [0x0010] = "LINK" }
-- Which TLVs a v1 receiver knows, per message type (others are unknown there).
local known = { [1] = { [0x0001] = true, [0x0002] = true, [0x0003] = true, [0x0004] = true },
                [2] = { [0x0010] = true } }
local families = { [4] = "IPv4", [6] = "IPv6" }

local f = {
  magic = ProtoField.string("mlink.topo.magic", "Magic"),
  version = ProtoField.uint8("mlink.topo.version", "Version"),
  type = ProtoField.uint8("mlink.topo.type", "Type", base.DEC, msg_types),
  flags = ProtoField.uint16("mlink.topo.flags", "Flags", base.HEX),
  flag_answer = ProtoField.bool("mlink.topo.flags.answer", "ANSWER", 16, nil, 0x0001),
  flag_other = ProtoField.uint16("mlink.topo.flags.reserved", "Reserved", base.HEX, nil, 0xfffe),
  length = ProtoField.uint16("mlink.topo.length", "Length"),
  key_id = ProtoField.uint16("mlink.topo.key_id", "Key ID"),
  seq = ProtoField.uint64("mlink.topo.seq", "Sequence", base.HEX),
  epoch = ProtoField.absolute_time("mlink.topo.seq.epoch", "Epoch", base.UTC),
  counter = ProtoField.uint32("mlink.topo.seq.counter", "Counter"),
  node_id = ProtoField.string("mlink.topo.node_id", "Node ID"),
  tlv = ProtoField.none("mlink.topo.tlv", "TLV"),
  tlv_type = ProtoField.uint16("mlink.topo.tlv.type", "Type", base.HEX, tlv_names, 0x7fff),
  tlv_critical = ProtoField.bool("mlink.topo.tlv.critical", "Must understand", 16, nil, 0x8000),
  tlv_length = ProtoField.uint16("mlink.topo.tlv.length", "Length"),
  tlv_value = ProtoField.bytes("mlink.topo.tlv.value", "Value"),
  ml_addr = ProtoField.string("mlink.topo.ml_addr", "ML address"),
  ml_plen = ProtoField.uint8("mlink.topo.ml_addr.prefix_len", "Prefix length"),
  ml_v4 = ProtoField.ipv4("mlink.topo.ml_addr.ipv4", "Address"),
  ml_v6 = ProtoField.ipv6("mlink.topo.ml_addr.ipv6", "Address"),
  link_addr = ProtoField.string("mlink.topo.link_addr", "Link address"),
  link_plen = ProtoField.uint8("mlink.topo.link_addr.prefix_len", "Prefix length"),
  link_v4 = ProtoField.ipv4("mlink.topo.link_addr.ipv4", "Address"),
  link_v6 = ProtoField.ipv6("mlink.topo.link_addr.ipv6", "Address"),
  seen = ProtoField.string("mlink.topo.seen", "Seen node ID"),
  hold = ProtoField.uint32("mlink.topo.hold_time", "Hold time (ms)"),
  link = ProtoField.string("mlink.topo.link", "Link"),
  weight = ProtoField.uint8("mlink.topo.link.weight", "Weight"),
  link_flags = ProtoField.uint8("mlink.topo.link.flags", "Flags", base.HEX),
  backup = ProtoField.bool("mlink.topo.link.flags.backup", "Backup", 8, nil, 0x01),
  drain = ProtoField.bool("mlink.topo.link.flags.drain", "Drain", 8, nil, 0x02),
  link_other = ProtoField.uint8("mlink.topo.link.flags.reserved", "Reserved", base.HEX, nil, 0xfc),
  subnet = ProtoField.string("mlink.topo.link.subnet", "Subnet"),
  family = ProtoField.uint8("mlink.topo.link.subnet.family", "Family", base.DEC, families),
  subnet_plen = ProtoField.uint8("mlink.topo.link.subnet.prefix_len", "Prefix length"),
  subnet_v4 = ProtoField.ipv4("mlink.topo.link.subnet.ipv4", "Network"),
  subnet_v6 = ProtoField.ipv6("mlink.topo.link.subnet.ipv6", "Network"),
  body = ProtoField.bytes("mlink.topo.body", "Body (not decoded)"),
  mac = ProtoField.bytes("mlink.topo.mac", "MAC (HMAC-SHA-512-256)"),
  mac_valid = ProtoField.bool("mlink.topo.mac.valid", "MAC verified"),
}
p.fields = f

-- Expert info. Groups follow Wireshark's meaning: MALFORMED for lengths that do not add
-- up (error), PROTOCOL for values v1 forbids (warn), UNDECODED for what v1 lets a newer
-- sender put there (note).
local e = {
  truncated = ProtoExpert.new("mlink.topo.truncated", "Shorter than header + MAC (84 bytes)",
                              expert.group.MALFORMED, expert.severity.ERROR),
  bad_length = ProtoExpert.new("mlink.topo.bad_length", "Length field is not the datagram's",
                               expert.group.MALFORMED, expert.severity.ERROR),
  bad_tlv = ProtoExpert.new("mlink.topo.bad_tlv", "TLV runs past the body or has a wrong length",
                            expert.group.MALFORMED, expert.severity.ERROR),
  bad_magic = ProtoExpert.new("mlink.topo.bad_magic", "Magic is not MLNK",
                              expert.group.PROTOCOL, expert.severity.WARN),
  oversized = ProtoExpert.new("mlink.topo.oversized", "Longer than 1232 bytes",
                              expert.group.PROTOCOL, expert.severity.WARN),
  bad_value = ProtoExpert.new("mlink.topo.bad_value", "Value v1 forbids",
                              expert.group.PROTOCOL, expert.severity.WARN),
  unknown_version = ProtoExpert.new("mlink.topo.unknown_version", "Unknown version",
                                    expert.group.UNDECODED, expert.severity.NOTE),
  unknown_type = ProtoExpert.new("mlink.topo.unknown_type", "Unknown or reserved message type",
                                 expert.group.UNDECODED, expert.severity.NOTE),
  unknown_tlv = ProtoExpert.new("mlink.topo.unknown_tlv", "Unknown TLV (skipped by v1)",
                                expert.group.UNDECODED, expert.severity.NOTE),
  bad_mac = ProtoExpert.new("mlink.topo.bad_mac", "MAC does not verify",
                            expert.group.SECURITY, expert.severity.WARN),
  unknown_key = ProtoExpert.new("mlink.topo.unknown_key", "Key id not in the key file",
                                expert.group.SECURITY, expert.severity.WARN),
  unknown_critical = ProtoExpert.new("mlink.topo.unknown_critical_tlv",
                                     "Unknown must-understand TLV (v1 rejects the packet)",
                                     expert.group.PROTOCOL, expert.severity.WARN),
}
p.experts = { e.truncated, e.bad_length, e.bad_tlv, e.bad_magic, e.oversized, e.bad_value,
              e.unknown_version, e.unknown_type, e.unknown_tlv, e.unknown_critical,
              e.bad_mac, e.unknown_key }

p.prefs.udp_port = Pref.uint("UDP port", 28012, "Port of the topology protocol (discovery.port)")
p.prefs.key_file = Pref.string("Key file", "",
  "[discovery] key_file ('<key id> <64 hex digits>' lines): MACs are verified with its keys")

-- Key id -> 32 key bytes, read from the key file when the preference names a new one.
local keys, keys_from = {}, nil
local function load_keys()
  if keys_from == p.prefs.key_file then return end
  keys, keys_from = {}, p.prefs.key_file
  if keys_from == "" then return end
  if not hmac then
    report_failure("mlink.topo: no mlink_hmac.lua next to mlink.lua: MACs are not verified")
  end
  local fh, err = io.open(keys_from, "r")
  if not fh then
    report_failure("mlink.topo: key file: " .. tostring(err))
    return
  end
  for line in fh:lines() do
    local id, hex = line:match("^%s*(%d+)%s+(%x+)%s*$")
    if id and #hex == 64 then
      keys[tonumber(id)] = hex:gsub("%x%x", function(b) return string.char(tonumber(b, 16)) end)
    elseif not line:match("^%s*$") and not line:match("^%s*#") then
      report_failure("mlink.topo: key file " .. keys_from .. ": not '<id> <64 hex digits>': " .. line)
    end
  end
  fh:close()
end

-- A node id: [A-Za-z0-9_-]{1,32}.
local function valid_id(s)
  return #s >= 1 and #s <= NODE_ID and s:match("^[A-Za-z0-9_-]+$") ~= nil
end

-- Bytes from the wire for a label or the Info column: printable ASCII, the rest as \xNN.
local function printable(s)
  return (s:gsub("[^\32-\126]", function(c) return string.format("\\x%02x", c:byte()) end))
end

-- An address of family 4 or 6 from tvb range r (4 or 16 bytes), as text.
local function addr_text(r)
  if r:len() == 4 then return tostring(r:ipv4()) end
  return tostring(r:ipv6())
end

local function host_bits_clear(r, plen)
  for i = 0, r:len() - 1 do
    local keep = math.max(0, math.min(8, plen - 8 * i))  -- network bits in this byte
    if r:range(i, 1):uint() % (2 ^ (8 - keep)) ~= 0 then return false end
  end
  return true
end

-- ML_ADDR / LINK_ADDR: prefix length (u8) + 4 or 16 address bytes.
local function host_prefix(tree, pinfo, v, which)
  local len = v:len()
  if len ~= 5 and len ~= 17 then
    tree:add_proto_expert_info(e.bad_tlv, "Host prefix of " .. len .. " bytes (5 or 17)")
    return nil
  end
  local plen, a = v:range(0, 1):uint(), v:range(1)
  local text = addr_text(a) .. "/" .. plen
  local fs = which == "ml" and { f.ml_addr, f.ml_plen, f.ml_v4, f.ml_v6 }
                            or { f.link_addr, f.link_plen, f.link_v4, f.link_v6 }
  local t = tree:add(fs[1], v, text)
  t:add(fs[2], v:range(0, 1))
  t:add(len == 5 and fs[3] or fs[4], a)
  if plen == 0 or plen > (len == 5 and 32 or 128) then
    t:add_proto_expert_info(e.bad_value, "Prefix length " .. plen .. " out of range")
  end
  return text
end

-- LINK: weight, flags, then 1-3 subnets of family (4/6), length, address.
local function link_tlv(tree, pinfo, v)
  if v:len() < 2 then
    tree:add_proto_expert_info(e.bad_tlv, "LINK shorter than weight and flags")
    return nil
  end
  local t = tree:add(f.link, v, "")
  local weight = v:range(0, 1):uint()
  local wi = t:add(f.weight, v:range(0, 1))
  if weight == 0 then wi:add_proto_expert_info(e.bad_value, "Weight 0") end
  local fl = t:add(f.link_flags, v:range(1, 1))
  fl:add(f.backup, v:range(1, 1))
  fl:add(f.drain, v:range(1, 1))
  fl:add(f.link_other, v:range(1, 1))
  local flags = v:range(1, 1):uint()
  local names, off = {}, 2
  while off < v:len() do
    local fam = v:range(off, 1):uint()
    local alen = (fam == 4 and 4) or (fam == 6 and 16) or nil
    if not alen then
      t:add(f.family, v:range(off, 1)):add_proto_expert_info(e.bad_value,
        "Subnet family " .. fam .. " (4 or 6)")
      t:add_proto_expert_info(e.bad_tlv, "Rest of LINK not decoded")
      break
    end
    if off + 2 + alen > v:len() then
      t:add_proto_expert_info(e.bad_tlv, "Subnet runs past the LINK")
      break
    end
    local plen, a = v:range(off + 1, 1):uint(), v:range(off + 2, alen)
    local text = addr_text(a) .. "/" .. plen
    local s = t:add(f.subnet, v:range(off, 2 + alen), text)
    s:add(f.family, v:range(off, 1))
    s:add(f.subnet_plen, v:range(off + 1, 1))
    s:add(alen == 4 and f.subnet_v4 or f.subnet_v6, a)
    if plen == 0 or plen > alen * 8 then
      s:add_proto_expert_info(e.bad_value, "Prefix length " .. plen .. " out of range")
    elseif not host_bits_clear(a, plen) then
      s:add_proto_expert_info(e.bad_value, "Host bits set")
    end
    names[#names + 1] = text
    off = off + 2 + alen
  end
  if #names == 0 then t:add_proto_expert_info(e.bad_value, "LINK without subnets") end
  if #names > 3 then t:add_proto_expert_info(e.bad_value, #names .. " subnets (at most 3)") end
  local summary = table.concat(names, ", ") .. " weight " .. weight ..
                  ((flags % 2 == 1) and " backup" or "") ..
                  ((math.floor(flags / 2) % 2 == 1) and " drain" or "")
  t:set_text("Link: " .. summary)
  return summary
end

-- One known TLV's value; returns a short text for the Info column, or nil.
local function tlv_value(tree, pinfo, typ, v)
  if typ == 0x0001 then return host_prefix(tree, pinfo, v, "ml") end
  if typ == 0x0002 then return host_prefix(tree, pinfo, v, "link") end
  if typ == 0x0003 then
    local id = v:len() > 0 and v:raw() or ""
    local t = tree:add(f.seen, v, printable(id))
    if not valid_id(id) then t:add_proto_expert_info(e.bad_value, "Not a valid node id") end
    return printable(id)
  end
  if typ == 0x0004 then
    if v:len() ~= 4 then
      tree:add_proto_expert_info(e.bad_tlv, "HOLD_TIME of " .. v:len() .. " bytes (4)")
      return nil
    end
    local t = tree:add(f.hold, v)
    if v:uint() == 0 then t:add_proto_expert_info(e.bad_value, "Hold time 0") end
    return v:uint() .. " ms"
  end
  if typ == 0x0010 then return link_tlv(tree, pinfo, v) end
end

-- The TLVs of body (a tvb range, possibly empty) for message type mtype.
local function dissect_tlvs(tvb, tree, pinfo, off, stop, mtype, info)
  local count = 0
  while off < stop do
    count = count + 1
    if stop - off < 4 then
      tree:add(f.body, tvb(off, stop - off)):add_proto_expert_info(e.bad_tlv,
        "TLV header cut short (" .. (stop - off) .. " bytes)")
      return
    end
    local raw, vlen = tvb(off, 2):uint(), tvb(off + 2, 2):uint()
    local critical = raw >= 0x8000
    local avail = math.min(vlen, stop - off - 4)
    local t = tree:add(f.tlv, tvb(off, 4 + avail))
    t:add(f.tlv_type, tvb(off, 2))
    t:add(f.tlv_critical, tvb(off, 2))
    t:add(f.tlv_length, tvb(off + 2, 2))
    local name = tlv_names[raw] or string.format("0x%04x", raw)
    if vlen > avail then
      t:set_text("TLV " .. name .. " (length " .. vlen .. " runs past the body)")
      t:add_proto_expert_info(e.bad_tlv, "Value length " .. vlen .. ", " .. avail ..
        " bytes left before the MAC")
      if avail > 0 then t:add(f.tlv_value, tvb(off + 4, avail)) end
      return
    end
    local v = tvb(off + 4, vlen)
    if known[mtype] and known[mtype][raw] then
      t:set_text(name)
      local text = tlv_value(t, pinfo, raw, v)
      if text then
        t:append_text(": " .. text)
        local list = info[name] or {}
        list[#list + 1] = text
        info[name] = list
      end
    else
      t:set_text("Unknown TLV " .. string.format("0x%04x", raw) .. ", " .. vlen .. " bytes")
      if vlen > 0 then t:add(f.tlv_value, v) end
      if critical then
        t:add_proto_expert_info(e.unknown_critical)
      else
        t:add_proto_expert_info(e.unknown_tlv)
      end
    end
    off = off + 4 + vlen
  end
  if count > 64 then tree:add_proto_expert_info(e.bad_value, count .. " TLVs (at most 64)") end
end

-- How many of each TLV a v1 message must carry: {min, max}.
local counts = { [1] = { ML_ADDR = { 1, 4 }, LINK_ADDR = { 1, 4 }, HOLD_TIME = { 1, 1 },
                         SEEN = { 0, 16 } },
                 [2] = { LINK = { 1, 16 } } }

function p.dissector(tvb, pinfo, tree)
  local len = tvb:len()
  if len == 0 then return 0 end
  pinfo.cols.protocol = "MLINK-TOPO"
  local root = tree:add(p, tvb(), "mlink topology protocol")
  if len < 4 or tvb(0, 4):string() ~= "MLNK" then
    root:add(f.magic, tvb(0, math.min(4, len))):add_proto_expert_info(e.bad_magic)
    pinfo.cols.info = "Not an mlink topology packet (magic)"
    return len
  end
  root:add(f.magic, tvb(0, 4))
  if len < 5 then
    root:add_proto_expert_info(e.truncated)
    return len
  end
  local version = tvb(4, 1):uint()
  local vi = root:add(f.version, tvb(4, 1))
  if version ~= 1 then
    -- Another version may lay out everything after it differently: show it as bytes.
    vi:add_proto_expert_info(e.unknown_version, "Version " .. version .. " (this dissector knows 1)")
    if len > 5 then root:add(f.body, tvb(5)) end
    pinfo.cols.info = "Version " .. version .. " (not decoded)"
    return len
  end
  if len < HEADER + MAC then
    root:add_proto_expert_info(e.truncated, "Only " .. len .. " bytes (header + MAC: 84)")
    if len > 5 then root:add(f.body, tvb(5)) end
    pinfo.cols.info = "Truncated (" .. len .. " bytes)"
    return len
  end

  local mtype = tvb(5, 1):uint()
  local ti = root:add(f.type, tvb(5, 1))
  local fl = root:add(f.flags, tvb(6, 2))
  fl:add(f.flag_answer, tvb(6, 2))
  fl:add(f.flag_other, tvb(6, 2))
  local li = root:add(f.length, tvb(8, 2))
  local wire_len = tvb(8, 2):uint()
  if wire_len ~= len then
    li:add_proto_expert_info(e.bad_length, "Length " .. wire_len .. ", datagram " .. len)
  end
  if len > MAX_PACKET then
    root:add_proto_expert_info(e.oversized, len .. " bytes (at most 1232)")
  end
  root:add(f.key_id, tvb(10, 2))
  local si = root:add(f.seq, tvb(12, 8))
  local epoch, counter = tvb(12, 4):uint(), tvb(16, 4):uint()
  si:add(f.epoch, tvb(12, 4), NSTime.new(epoch, 0))
  si:add(f.counter, tvb(16, 4))
  si:append_text(" (epoch " .. epoch .. ", counter " .. counter .. ")")

  -- Node id: NUL-padded; after the first NUL only NULs.
  local nid_r = tvb(20, NODE_ID)
  local nid = nid_r:raw():match("^[^\0]*")
  local ni = root:add(f.node_id, nid_r, printable(nid))
  local padded_ok = true
  for i = #nid, NODE_ID - 1 do
    if nid_r:range(i, 1):uint() ~= 0 then padded_ok = false break end
  end
  if not valid_id(nid) or not padded_ok then
    ni:add_proto_expert_info(e.bad_value, "Not a valid node id (or junk after the NUL padding)")
  end

  local name = msg_types[mtype] or ("type " .. mtype)
  local info = {}
  local body = root:add(tvb(HEADER, len - HEADER - MAC), name .. " body")
  if mtype == 1 or mtype == 2 then
    dissect_tlvs(tvb, body, pinfo, HEADER, len - MAC, mtype, info)
    for n, range in pairs(counts[mtype]) do
      local c = info[n] and #info[n] or 0
      if c < range[1] or c > range[2] then
        body:add_proto_expert_info(e.bad_value, c .. " " .. n .. " TLVs (" .. range[1] ..
          (range[2] > range[1] and (" to " .. range[2]) or "") .. ")")
      end
    end
  else
    ti:add_proto_expert_info(e.unknown_type, name)
    if len - MAC > HEADER then body:add(f.body, tvb(HEADER, len - HEADER - MAC)) end
  end
  local mi = root:add(f.mac, tvb(len - MAC, MAC))
  load_keys()
  if hmac and keys_from ~= "" then
    local key_id = tvb(10, 2):uint()
    if not keys[key_id] then
      mi:add_proto_expert_info(e.unknown_key, "Key id " .. key_id .. " is not in " .. keys_from)
    else
      local ok = hmac(keys[key_id], tvb(0, len - MAC):raw()) == tvb(len - MAC, MAC):raw()
      mi:add(f.mac_valid, tvb(len - MAC, MAC), ok):set_generated()
      if not ok then
        mi:add_proto_expert_info(e.bad_mac, "MAC does not verify with key id " .. key_id)
      end
    end
  end

  nid = printable(nid)
  local text = name .. " from " .. nid
  if tvb(6, 2):uint() % 2 == 1 and mtype == 1 then text = text .. " [ANSWER]" end
  if info["SEEN"] then text = text .. ", seen " .. table.concat(info["SEEN"], ",") end
  if info["LINK"] then text = text .. ", " .. #info["LINK"] .. " links" end
  text = text .. ", key " .. tvb(10, 2):uint() .. ", seq " .. epoch .. ":" .. counter
  pinfo.cols.info = text
  root:append_text(", " .. name .. " from " .. nid)
  return len
end

-- Another port (discovery.port): claim UDP payloads that start with the magic and version 1
-- and whose length field is the datagram's, so a heuristic never takes foreign traffic.
local function heuristic(tvb, pinfo, tree)
  if tvb:len() < HEADER + MAC or tvb(0, 4):string() ~= "MLNK" then return false end
  if tvb(4, 1):uint() ~= 1 or tvb(8, 2):uint() ~= tvb:len() then return false end
  p.dissector(tvb, pinfo, tree)
  return true
end

local registered_port = nil
local function register_port()
  local udp = DissectorTable.get("udp.port")
  if registered_port then udp:remove(registered_port, p) end
  registered_port = p.prefs.udp_port
  if registered_port ~= 0 then udp:add(registered_port, p) end
end

p.prefs_changed = register_port
register_port()
p:register_heuristic("udp", heuristic)
