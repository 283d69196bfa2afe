-- mbms_mikey.lua: what Wireshark's MIKEY dissector does not know about the
-- MBMS profile (TS 33.246) and the MIKEY-SAKKE additions (TS 33.180).
--
-- Load it with   tshark -X lua_script:tools/wireshark/mbms_mikey.lua ...
-- or copy it to the personal Lua plugins folder (README.md, "Wireshark").
--
-- It calls the built-in `mikey` dissector first, then walks the payload
-- chain (RFC 3830 §6) itself and adds, under "MBMS MIKEY":
--   * the Key ID General Extension (RFC 4563, EXT type 3): Key Domain ID,
--     MSK ID (Key Group, Key Number) and MTK ID;
--   * the names of CS ID map types 1 (empty map, RFC 4563) and 2
--     (GENERIC-ID, RFC 6043);
--   * the IDR roles (RFC 6043, and 8/9 of the MIKEY-SAKKE profile) and the
--     key-parameters General Extension (EXT type 7, TS 33.180), left raw;
--   * a summary in the Info column: "MSK 00f110/00010002" or
--     "MTK 00f110/00010002#0007".
-- It never raises an error on bad input: a field cut short or a length that
-- lies is an expert-info error and the rest is left raw.
--
-- Registered on UDP port 2269 (in place of `mikey`, which it calls) and for
-- the media type application/mikey (MTK objects, MIKEY in HTTP bodies).
-- Wireshark 4.0 or later.

local proto = Proto("mbms_mikey", "MBMS MIKEY (TS 33.246 Key ID, MIKEY-SAKKE additions)")

-- Value names. RFC 3830 §6.1, RFC 4563 §4/§5, RFC 6043 §6.1/§6.6, and the
-- MIKEY-SAKKE profile of TS 33.180 (docs/oracles.md §4e).
local map_type_names = {
    [0] = "SRTP-ID",
    [1] = "Empty map",
    [2] = "GENERIC-ID",
}
local ext_type_names = {
    [0] = "Vendor ID",
    [1] = "SDP IDs",
    [3] = "Key ID",
    [7] = "Key parameters (TS 33.180)",
}
local key_id_type_names = {
    [0] = "MBMS Key Domain ID",
    [1] = "MBMS Service Key ID",
    [2] = "MBMS Traffic Key ID",
}
-- [CHOICE] (docs/profile.md §6): roles 8 and 9 are named by what MIKEY-SAKKE
-- messages carry there (the UIDs of initiator and responder), as is EXT type 7
-- above; their registered names were not at hand.
local idr_role_names = {
    [1] = "Initiator (IDRi)",
    [2] = "Responder (IDRr)",
    [3] = "KMS (IDRkms)",
    [4] = "Pre-Shared Key (IDRpsk)",
    [5] = "Application (IDRapp)",
    [6] = "Initiator's KMS (IDRkmsi)",
    [7] = "Responder's KMS (IDRkmsr)",
    [8] = "Initiator UID",
    [9] = "Responder UID",
}
local payload_names = {
    [0] = "Last payload", [1] = "KEMAC", [2] = "PKE", [3] = "DH", [4] = "SIGN",
    [5] = "T", [6] = "ID", [7] = "CERT", [8] = "CHASH", [9] = "V", [10] = "SP",
    [11] = "RAND", [12] = "ERR", [14] = "IDR", [20] = "Key data",
    [21] = "General Extension", [26] = "SAKKE",
}

local f = {
    key_domain = ProtoField.bytes("mbms_mikey.key_domain", "Key Domain ID"),
    msk_id = ProtoField.uint32("mbms_mikey.msk_id", "MSK ID", base.HEX),
    key_group = ProtoField.uint16("mbms_mikey.key_group", "Key Group", base.DEC),
    key_number = ProtoField.uint16("mbms_mikey.key_number", "Key Number", base.DEC),
    mtk_id = ProtoField.uint16("mbms_mikey.mtk_id", "MTK ID", base.HEX),
    key_id_type = ProtoField.uint8("mbms_mikey.key_id.type", "Key ID Type", base.DEC, key_id_type_names),
    key_id_len = ProtoField.uint8("mbms_mikey.key_id.len", "Key ID Length", base.DEC),
    key_id_value = ProtoField.bytes("mbms_mikey.key_id.value", "Key ID"),
    ext_type = ProtoField.uint8("mbms_mikey.ext.type", "Extension type", base.DEC, ext_type_names),
    ext_len = ProtoField.uint16("mbms_mikey.ext.len", "Extension length", base.DEC),
    key_params = ProtoField.bytes("mbms_mikey.key_params", "Key parameters"),
    map_type = ProtoField.uint8("mbms_mikey.cs_id_map_type", "CS ID map type", base.DEC, map_type_names),
    idr_role = ProtoField.uint8("mbms_mikey.idr.role", "IDR role", base.DEC, idr_role_names),
    summary = ProtoField.string("mbms_mikey.summary", "Keys"),
}
proto.fields = {
    f.key_domain, f.msk_id, f.key_group, f.key_number, f.mtk_id,
    f.key_id_type, f.key_id_len, f.key_id_value, f.ext_type, f.ext_len,
    f.key_params, f.map_type, f.idr_role, f.summary,
}

local ex = {
    truncated = ProtoExpert.new("mbms_mikey.truncated",
        "The message ends inside a field", expert.group.MALFORMED, expert.severity.ERROR),
    bad_length = ProtoExpert.new("mbms_mikey.bad_length",
        "A length field runs past the end of what holds it", expert.group.MALFORMED, expert.severity.ERROR),
    trailing = ProtoExpert.new("mbms_mikey.trailing",
        "Octets after the last payload", expert.group.MALFORMED, expert.severity.ERROR),
    unknown = ProtoExpert.new("mbms_mikey.unknown",
        "Unknown type of unknown length: the rest is left raw", expert.group.UNDECODED, expert.severity.WARN),
    internal = ProtoExpert.new("mbms_mikey.internal",
        "mbms_mikey.lua failed on this message", expert.group.UNDECODED, expert.severity.ERROR),
}
proto.experts = { ex.truncated, ex.bad_length, ex.trailing, ex.unknown, ex.internal }

local mikey = Dissector.get("mikey")

-- A cursor over the message: every read is checked against its length.
local Walk = {}
Walk.__index = Walk

local function new_walk(tvb, tree)
    return setmetatable({ tvb = tvb, len = tvb:len(), tree = tree, keys = nil }, Walk)
end

-- Whether `n` octets at `off` are there; if not, marks the rest (expert
-- `e`, text `what`) and returns false.
function Walk:has(off, n, e, what)
    if off + n <= self.len then
        return true
    end
    local left = self.len - off
    if left < 0 then left = 0 end
    local text = string.format("%s: %d octets needed at offset %d, %d left", what, n, off, left)
    if left > 0 then
        self.tree:add_tvb_expert_info(e, self.tvb(off, left), text)
    else
        self.tree:add_proto_expert_info(e, text)
    end
    return false
end

function Walk:u8(off) return self.tvb(off, 1):uint() end
function Walk:u16(off) return self.tvb(off, 2):uint() end

-- RFC 4563 §4: Key ID sub-payloads `Type (8) ‖ Length (8) ‖ Key ID` filling
-- the EXT data [from, to).
function Walk:key_ids(from, to, tree)
    local off = from
    local keys = {}
    while off < to do
        if off + 2 > to then
            self.tree:add_tvb_expert_info(ex.bad_length, self.tvb(off, to - off),
                "Key ID sub-payload cut by the EXT length")
            return
        end
        local ktype, klen = self:u8(off), self:u8(off + 1)
        if off + 2 + klen > to then
            self.tree:add_tvb_expert_info(ex.bad_length, self.tvb(off, to - off),
                string.format("Key ID length %d runs past the EXT data (%d octets left)", klen, to - off - 2))
            return
        end
        local sub = tree:add(proto, self.tvb(off, 2 + klen), "Key ID: " .. (key_id_type_names[ktype] or ("type " .. ktype)))
        sub:add(f.key_id_type, self.tvb(off, 1))
        sub:add(f.key_id_len, self.tvb(off + 1, 1))
        local value = klen > 0 and self.tvb(off + 2, klen) or nil
        if ktype == 0 and klen == 3 then
            sub:add(f.key_domain, value)
            keys.domain = keys.domain or value:bytes():tohex(true)
        elseif ktype == 1 and klen == 4 then
            local msk = sub:add(f.msk_id, value)
            msk:add(f.key_group, self.tvb(off + 2, 2))
            msk:add(f.key_number, self.tvb(off + 4, 2))
            keys.msk = keys.msk or value:bytes():tohex(true)
        elseif ktype == 2 and klen == 2 then
            sub:add(f.mtk_id, value)
            keys.mtk = keys.mtk or value:bytes():tohex(true)
        elseif value then
            sub:add(f.key_id_value, value)
        end
        off = off + 2 + klen
    end
    self.keys = self.keys or keys
end

-- HDR (RFC 3830 §6.1); returns the offset after it and the first payload
-- type, or nil when the rest cannot be followed.
function Walk:hdr()
    if not self:has(0, 10, ex.truncated, "HDR") then return nil end
    local next_type, ncs, map = self:u8(2), self:u8(8), self:u8(9)
    self.tree:add(f.map_type, self.tvb(9, 1))
    local off = 10
    if map == 0 then
        -- SRTP-ID: Policy no (8) ‖ SSRC (32) ‖ ROC (32) per crypto session.
        if not self:has(off, 9 * ncs, ex.truncated, "SRTP-ID map") then return nil end
        off = off + 9 * ncs
    elseif map == 1 then
        -- Empty map: no map info.
    elseif map == 2 then
        -- GENERIC-ID (RFC 6043 §6.1.2.1): CS ID ‖ Prot type ‖ S/#P ‖ Ps ‖
        -- Session Data Length (16) ‖ Session Data ‖ SPI Length ‖ SPI.
        for _ = 1, ncs do
            if not self:has(off, 3, ex.truncated, "GENERIC-ID map entry") then return nil end
            local np = self:u8(off + 2) % 128
            off = off + 3
            if not self:has(off, np + 2, ex.truncated, "GENERIC-ID map entry") then return nil end
            off = off + np
            local sdl = self:u16(off)
            if not self:has(off + 2, sdl + 1, ex.bad_length, "GENERIC-ID Session Data Length") then return nil end
            off = off + 2 + sdl
            local spil = self:u8(off)
            if not self:has(off + 1, spil, ex.bad_length, "GENERIC-ID SPI Length") then return nil end
            off = off + 1 + spil
        end
    elseif ncs > 0 then
        self.tree:add_tvb_expert_info(ex.unknown, self.tvb(9, 1),
            string.format("CS ID map type %d with %d crypto sessions", map, ncs))
        return nil
    end
    return off, next_type
end

-- A field `Length ‖ data`: the length (of `lsize` octets) at `off`; returns
-- the offset after the data, or nil.
function Walk:len_field(off, lsize, what)
    if not self:has(off, lsize, ex.truncated, what) then return nil end
    local n = lsize == 1 and self:u8(off) or self:u16(off)
    if not self:has(off + lsize, n, ex.bad_length, what) then return nil end
    return off + lsize + n
end

local mac_lens = { [0] = 0, [1] = 20 } -- RFC 3830 §6.2: NULL, HMAC-SHA-1-160
local dh_lens = { [0] = 192, [1] = 96, [2] = 128 } -- RFC 3830 §6.4: OAKLEY 5, 1, 2
local hash_lens = { [0] = 20, [1] = 16 } -- RFC 3830 §6.8: SHA-1, MD5
local ts_lens = { [0] = 8, [1] = 8, [2] = 4 } -- RFC 3830 §6.6: NTP-UTC, NTP, COUNTER

-- A length given by a type octet at `off`, from `lens`; nil (after a
-- warning) for a type of unknown length.
function Walk:typed_len(off, lens, what)
    if not self:has(off, 1, ex.truncated, what) then return nil end
    local t = self:u8(off)
    local n = lens[t]
    if n == nil then
        self.tree:add_tvb_expert_info(ex.unknown, self.tvb(off, 1), string.format("%s %d", what, t))
    end
    return n
end

-- The body of the payload of type `ptype` at `off`, after its next-payload
-- octet (at `off`); returns the offset after it, or nil.
function Walk:payload(ptype, off)
    local b = off + 1
    if ptype == 1 then -- KEMAC: Encr alg ‖ Encr data len (16) ‖ Encr data ‖ MAC alg ‖ MAC
        local e = self:len_field(b + 1, 2, "KEMAC Encr data len")
        if not e then return nil end
        local n = self:typed_len(e, mac_lens, "KEMAC MAC alg")
        if not n then return nil end
        if not self:has(e + 1, n, ex.truncated, "KEMAC MAC") then return nil end
        return e + 1 + n
    elseif ptype == 2 then -- PKE: C (2 bits) ‖ Data len (14 bits) ‖ Data
        if not self:has(b, 2, ex.truncated, "PKE") then return nil end
        local n = self:u16(b) % 0x4000
        if not self:has(b + 2, n, ex.bad_length, "PKE Data len") then return nil end
        return b + 2 + n
    elseif ptype == 3 then -- DH: Group ‖ value ‖ Reserved/KV ‖ KV data
        local n = self:typed_len(b, dh_lens, "DH-Group")
        if not n then return nil end
        local kvo = b + 1 + n
        if not self:has(b + 1, n + 1, ex.truncated, "DH") then return nil end
        local kv = self:u8(kvo) % 16
        if kv == 0 then return kvo + 1 end
        if kv == 1 then return self:len_field(kvo + 1, 1, "DH SPI Length") end
        if kv == 2 then
            local e = self:len_field(kvo + 1, 1, "DH VF Length")
            return e and self:len_field(e, 1, "DH VT Length")
        end
        self.tree:add_tvb_expert_info(ex.unknown, self.tvb(kvo, 1), "DH KV type " .. kv)
        return nil
    elseif ptype == 5 then -- T: TS type ‖ TS value
        local n = self:typed_len(b, ts_lens, "TS type")
        if not n then return nil end
        if not self:has(b + 1, n, ex.truncated, "TS value") then return nil end
        return b + 1 + n
    elseif ptype == 6 or ptype == 7 then -- ID / CERT: type ‖ len (16) ‖ data
        return self:len_field(b + 1, 2, ptype == 6 and "ID len" or "Cert len")
    elseif ptype == 8 then -- CHASH: Hash func ‖ Hash
        local n = self:typed_len(b, hash_lens, "CHASH Hash func")
        if not n then return nil end
        if not self:has(b + 1, n, ex.truncated, "CHASH Hash") then return nil end
        return b + 1 + n
    elseif ptype == 9 then -- V: Auth alg ‖ Ver data
        local n = self:typed_len(b, mac_lens, "V Auth alg")
        if not n then return nil end
        if not self:has(b + 1, n, ex.truncated, "V Ver data") then return nil end
        return b + 1 + n
    elseif ptype == 10 then -- SP: Policy no ‖ Prot type ‖ param len (16) ‖ TLVs
        local e = self:len_field(b + 2, 2, "SP Policy param length")
        if not e then return nil end
        local p = b + 4
        while p < e do
            if p + 2 > e or p + 2 + self:u8(p + 1) > e then
                self.tree:add_tvb_expert_info(ex.bad_length, self.tvb(p, e - p),
                    "SP parameter runs past the Policy param length")
                break
            end
            p = p + 2 + self:u8(p + 1)
        end
        return e
    elseif ptype == 11 then -- RAND: len (8) ‖ RAND
        return self:len_field(b, 1, "RAND len")
    elseif ptype == 12 then -- ERR: Err no ‖ Reserved (16)
        if not self:has(b, 3, ex.truncated, "ERR") then return nil end
        return b + 3
    elseif ptype == 14 then -- IDR (RFC 6043 §6.6): role ‖ type ‖ len (16) ‖ data
        if not self:has(b, 1, ex.truncated, "IDR role") then return nil end
        self.tree:add(f.idr_role, self.tvb(b, 1))
        return self:len_field(b + 2, 2, "IDR len")
    elseif ptype == 21 then -- EXT: type ‖ len (16) ‖ data
        if not self:has(b, 3, ex.truncated, "EXT") then return nil end
        local etype, elen = self:u8(b), self:u16(b + 1)
        local sub = self.tree:add(proto, self.tvb(off, math.min(4 + elen, self.len - off)),
            "General Extension: " .. (ext_type_names[etype] or ("type " .. etype)))
        sub:add(f.ext_type, self.tvb(b, 1))
        sub:add(f.ext_len, self.tvb(b + 1, 2))
        if not self:has(b + 3, elen, ex.bad_length, "EXT length") then return nil end
        local e = b + 3 + elen
        if etype == 3 then
            self:key_ids(b + 3, e, sub)
        elseif etype == 7 and elen > 0 then
            sub:add(f.key_params, self.tvb(b + 3, elen))
        end
        return e
    elseif ptype == 26 then -- SAKKE (RFC 6509 §4.2): params ‖ ID scheme ‖ len (16) ‖ data
        return self:len_field(b + 2, 2, "SAKKE data len")
    end
    self.tree:add_tvb_expert_info(ex.unknown, self.tvb(off, self.len - off),
        "payload type " .. ptype .. " (" .. (payload_names[ptype] or "unknown") .. ")")
    return nil
end

-- Walks HDR and the chain; marks what is wrong.
function Walk:run()
    local off, ptype = self:hdr()
    while off and ptype ~= 0 do
        if ptype == 4 then
            -- SIGN (RFC 3830 §6.5): S type (4 bits) ‖ Signature len (12 bits)
            -- ‖ Signature; no next-payload octet, always last.
            if not self:has(off, 2, ex.truncated, "SIGN") then return end
            local n = self:u16(off) % 0x1000
            if not self:has(off + 2, n, ex.bad_length, "SIGN Signature len") then return end
            off, ptype = off + 2 + n, 0
        else
            if not self:has(off, 1, ex.truncated, (payload_names[ptype] or "payload") .. " next payload") then
                return
            end
            local next_type = self:u8(off)
            off, ptype = self:payload(ptype, off), next_type
        end
    end
    if off and off < self.len then
        self.tree:add_tvb_expert_info(ex.trailing, self.tvb(off, self.len - off),
            string.format("%d octets after the last payload", self.len - off))
    end
end

-- "MSK 00f110/00010002" or "MTK 00f110/00010002#0007".
local function summary(keys)
    if not keys or not keys.msk then return nil end
    local s = (keys.mtk and "MTK " or "MSK ") .. (keys.domain or "?") .. "/" .. keys.msk
    if keys.mtk then s = s .. "#" .. keys.mtk end
    return s
end

function proto.dissector(tvb, pinfo, tree)
    if mikey then
        -- The built-in dissector throws on a cut message (shown as
        -- [Malformed Packet]); that must not stop this one.
        pcall(mikey.call, mikey, tvb, pinfo, tree)
    end
    local root = tree:add(proto, tvb())
    local w = new_walk(tvb, root)
    local ok, err = pcall(Walk.run, w)
    if not ok then
        root:add_proto_expert_info(ex.internal, "mbms_mikey.lua: " .. tostring(err))
    end
    local s = summary(w.keys)
    if s then
        root:add(f.summary, s)
        root:append_text(", " .. s)
        pinfo.cols.info:append(", " .. s)
    end
    return tvb:len()
end

DissectorTable.get("udp.port"):add(2269, proto)
DissectorTable.get("media_type"):add("application/mikey", proto)
