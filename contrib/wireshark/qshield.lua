-- qshield.lua: a Wireshark dissector for the qshield wire protocol, version 1
-- (docs/protocol.md §2). Handshake fragments (index, count, sender index, message length,
-- payload, mac1, whether mac2 is set), cookie replies (receiver index, nonce, sealed
-- cookie) and data (receiver index, counter, encrypted payload, tag). A datagram that
-- breaks a rule of §2 is shown as malformed (an expert item) with the rule it breaks.
--
--   tshark -X lua_script:contrib/wireshark/qshield.lua -r capture.pcapng -Y qshield
--   wireshark -X lua_script:contrib/wireshark/qshield.lua   (or copy it to ~/.local/lib/wireshark/plugins/)
--
-- UDP port 51820 is dissected as qshield; another port: Decode As..., or the preference
-- qshield.udp_port.

local qshield = Proto("qshield", "qshield tunnel (v1)")

local TYPES = { [1] = "Handshake initiation fragment", [2] = "Handshake response fragment",
                [3] = "Cookie reply", [4] = "Data" }
local FRAGMENT_PAYLOAD_MAX = 1156  -- bytes of a message per fragment
local FRAGMENTS_MAX = 4
local MESSAGE_MAX = FRAGMENT_PAYLOAD_MAX * FRAGMENTS_MAX
local MAC_BYTES = 16
local FRAGMENT_HEADER = 12
local COOKIE_REPLY_BYTES = 52
local DATA_HEADER = 16
local TAG_BYTES = 16

local f = {
    type = ProtoField.uint8("qshield.type", "Type", base.DEC, TYPES),
    reserved = ProtoField.bytes("qshield.reserved", "Reserved"),
    fragment_index = ProtoField.uint8("qshield.fragment.index", "Fragment index"),
    fragment_count = ProtoField.uint8("qshield.fragment.count", "Fragment count"),
    sender_index = ProtoField.uint32("qshield.sender_index", "Sender index", base.HEX),
    message_len = ProtoField.uint16("qshield.message_len", "Message length"),
    payload = ProtoField.bytes("qshield.fragment.payload", "Fragment payload"),
    payload_len = ProtoField.uint16("qshield.fragment.payload_len", "Fragment payload length"),
    mac1 = ProtoField.bytes("qshield.mac1", "mac1"),
    mac2 = ProtoField.bytes("qshield.mac2", "mac2"),
    mac2_present = ProtoField.bool("qshield.mac2_present", "mac2 present"),
    receiver_index = ProtoField.uint32("qshield.receiver_index", "Receiver index", base.HEX),
    nonce = ProtoField.bytes("qshield.nonce", "Nonce"),
    sealed_cookie = ProtoField.bytes("qshield.sealed_cookie", "Sealed cookie"),
    counter = ProtoField.uint64("qshield.counter", "Counter"),
    encrypted = ProtoField.bytes("qshield.encrypted", "Encrypted inner packet"),
    encrypted_len = ProtoField.uint16("qshield.encrypted_len", "Encrypted length"),
    keepalive = ProtoField.bool("qshield.keepalive", "Keepalive"),
    tag = ProtoField.bytes("qshield.tag", "Tag"),
}
qshield.fields = f

local malformed = ProtoExpert.new("qshield.malformed", "Malformed qshield datagram",
    expert.group.MALFORMED, expert.severity.ERROR)
qshield.experts = { malformed }

qshield.prefs.udp_port = Pref.uint("UDP port", 51820, "The UDP port dissected as qshield")

local function refuse(tree, buf, why)
    tree:add_proto_expert_info(malformed, "Malformed qshield datagram: " .. why)
end

local function all_zero(range)
    for i = 0, range:len() - 1 do
        if range(i, 1):uint() ~= 0 then return false end
    end
    return true
end

local function fragment(buf, tree, pinfo, kind)
    local len = buf:len()
    if len < FRAGMENT_HEADER + 2 * MAC_BYTES then
        return refuse(tree, buf, string.format("a fragment of %d bytes is shorter than its %d-byte header and MACs",
            len, FRAGMENT_HEADER + 2 * MAC_BYTES))
    end
    local idx, count = buf(1, 1):uint(), buf(2, 1):uint()
    tree:add(f.fragment_index, buf(1, 1))
    tree:add(f.fragment_count, buf(2, 1))
    local reserved = tree:add(f.reserved, buf(3, 1))
    local sender = buf(4, 4):le_uint()
    tree:add_le(f.sender_index, buf(4, 4))
    local message_len = buf(8, 2):le_uint()
    tree:add_le(f.message_len, buf(8, 2))
    tree:add(f.reserved, buf(10, 2))
    local n = len - FRAGMENT_HEADER - 2 * MAC_BYTES
    tree:add(f.payload_len, n):set_generated()
    if n > 0 then tree:add(f.payload, buf(FRAGMENT_HEADER, n)) end
    local mac2 = buf(len - MAC_BYTES, MAC_BYTES)
    tree:add(f.mac1, buf(len - 2 * MAC_BYTES, MAC_BYTES))
    tree:add(f.mac2, mac2)
    tree:add(f.mac2_present, not all_zero(mac2)):set_generated()
    pinfo.cols.info = string.format("%s %d/%d, sender 0x%08x, message %d bytes%s", kind, idx + 1, count,
        sender, message_len, all_zero(mac2) and "" or ", mac2")
    if not (all_zero(buf(3, 1)) and all_zero(buf(10, 2))) then
        return refuse(reserved, buf, "reserved bytes are not zero")
    end
    if message_len < 1 or message_len > MESSAGE_MAX then
        return refuse(tree, buf, string.format("message length %d is not 1..%d", message_len, MESSAGE_MAX))
    end
    local want_count = math.ceil(message_len / FRAGMENT_PAYLOAD_MAX)
    if count ~= want_count or idx >= count then
        return refuse(tree, buf, string.format("fragment %d of %d, but a %d-byte message has %d fragments",
            idx, count, message_len, want_count))
    end
    local want = math.min((idx + 1) * FRAGMENT_PAYLOAD_MAX, message_len) - idx * FRAGMENT_PAYLOAD_MAX
    if n ~= want then
        return refuse(tree, buf, string.format("fragment %d carries %d bytes of the message, not %d", idx, n, want))
    end
end

local function cookie_reply(buf, tree, pinfo)
    local len = buf:len()
    if len ~= COOKIE_REPLY_BYTES then
        pinfo.cols.info = "Cookie reply (malformed)"
        return refuse(tree, buf, string.format("a cookie reply is %d bytes, not %d", len, COOKIE_REPLY_BYTES))
    end
    local reserved = tree:add(f.reserved, buf(1, 3))
    tree:add_le(f.receiver_index, buf(4, 4))
    tree:add(f.nonce, buf(8, 12))
    tree:add(f.sealed_cookie, buf(20, 32))
    pinfo.cols.info = string.format("Cookie reply to 0x%08x", buf(4, 4):le_uint())
    if not all_zero(buf(1, 3)) then return refuse(reserved, buf, "reserved bytes are not zero") end
end

local function data(buf, tree, pinfo)
    local len = buf:len()
    if len < DATA_HEADER + TAG_BYTES then
        return refuse(tree, buf, string.format("a data packet of %d bytes is shorter than its header and tag (%d)",
            len, DATA_HEADER + TAG_BYTES))
    end
    local reserved = tree:add(f.reserved, buf(1, 3))
    tree:add_le(f.receiver_index, buf(4, 4))
    tree:add_le(f.counter, buf(8, 8))
    local n = len - DATA_HEADER - TAG_BYTES
    tree:add(f.encrypted_len, n):set_generated()
    if n > 0 then tree:add(f.encrypted, buf(DATA_HEADER, n)) end
    tree:add(f.keepalive, n == 0):set_generated()
    tree:add(f.tag, buf(len - TAG_BYTES, TAG_BYTES))
    pinfo.cols.info = string.format("Data to 0x%08x, counter %s, %d bytes%s", buf(4, 4):le_uint(),
        tostring(buf(8, 8):le_uint64()), n, n == 0 and " (keepalive)" or "")
    if not all_zero(buf(1, 3)) then return refuse(reserved, buf, "reserved bytes are not zero") end
    if n % 16 ~= 0 then
        return refuse(tree, buf, string.format("the encrypted inner packet is %d bytes, not a multiple of 16", n))
    end
end

function qshield.dissector(buf, pinfo, root)
    pinfo.cols.protocol = "qshield"
    local tree = root:add(qshield, buf())
    if buf:len() < 1 then return refuse(tree, buf, "empty datagram") end
    local t = buf(0, 1):uint()
    tree:add(f.type, buf(0, 1))
    if t == 1 then
        fragment(buf, tree, pinfo, "Initiation fragment")
    elseif t == 2 then
        fragment(buf, tree, pinfo, "Response fragment")
    elseif t == 3 then
        cookie_reply(buf, tree, pinfo)
    elseif t == 4 then
        data(buf, tree, pinfo)
    else
        pinfo.cols.info = string.format("Unknown type %d", t)
        refuse(tree, buf, string.format("type %d is not 1 to 4", t))
    end
    return buf:len()
end

-- (51820 is also WireGuard's port: qshield takes it; the last registration wins)
local registered = nil
local function register_port()
    local udp = DissectorTable.get("udp.port")
    if registered then udp:remove(registered, qshield) end
    registered = qshield.prefs.udp_port
    udp:add(registered, qshield)
end
qshield.prefs_changed = register_port
register_port()
