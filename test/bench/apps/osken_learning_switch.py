# An L2 learning switch for os-ken (Debian's python3-os-ken), equivalent to tcp-migrate's
# controller/apps/learning-switch.ts, so both controllers do the same work per Packet-In:
# parse the frame, learn the source MAC per datapath, and for a known destination install an
# exact (in_port, eth_src, eth_dst) flow with an idle timeout and send the packet out;
# flood unknown destinations. Based on os_ken's simple_switch_13, without per-packet logging.
# Run: /usr/bin/python3 -m os_ken.cmd.manager --ofp-tcp-listen-port P test/bench/apps/osken_learning_switch.py
from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.ofproto import ofproto_v1_3
from os_ken.lib.packet import packet, ethernet

MAX_MACS = 65536


class LearningSwitch13(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.macs = {}

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def switch_features_handler(self, ev):
        dp = ev.msg.datapath
        ofp, parser = dp.ofproto, dp.ofproto_parser
        actions = [parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)]
        inst = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)]
        dp.send_msg(parser.OFPFlowMod(datapath=dp, priority=0, match=parser.OFPMatch(), instructions=inst))

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def packet_in_handler(self, ev):
        msg = ev.msg
        dp = msg.datapath
        ofp, parser = dp.ofproto, dp.ofproto_parser
        in_port = msg.match['in_port']
        eth = packet.Packet(msg.data).get_protocols(ethernet.ethernet)[0]
        src, dst = eth.src, eth.dst
        table = self.macs.setdefault(dp.id, {})
        if not (int(src[0:2], 16) & 1):
            if table.get(src) != in_port:
                if len(table) >= MAX_MACS and src not in table:
                    table.pop(next(iter(table)))
                table[src] = in_port
        out_port = None if (int(dst[0:2], 16) & 1) else table.get(dst)
        if out_port is None:
            out_port = ofp.OFPP_FLOOD
        elif out_port == in_port:
            return
        else:
            match = parser.OFPMatch(in_port=in_port, eth_src=src, eth_dst=dst)
            inst = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, [parser.OFPActionOutput(out_port)])]
            dp.send_msg(parser.OFPFlowMod(datapath=dp, priority=10, idle_timeout=60, flags=ofp.OFPFF_SEND_FLOW_REM,
                                          match=match, instructions=inst))
        data = msg.data if msg.buffer_id == ofp.OFP_NO_BUFFER else None
        dp.send_msg(parser.OFPPacketOut(datapath=dp, buffer_id=msg.buffer_id, in_port=in_port,
                                        actions=[parser.OFPActionOutput(out_port)], data=data))
