-- tcp-migrate: a complete Snort 3 configuration for the IDS host on the switch's mirror port.
-- Rules are NOT included here: the command line gives them once, with -R (including them here as
-- well would load every rule twice). Run it after or before the controller, either works (see
-- README.md beside this file):
--
--   snort -c snort-rules/snort3.lua -R snort-rules/migrate.snort3.rules \
--         --daq afpacket -i <mirror-if> -A alert_unixsock -l <logdir> -k none
--
-- Alerts go to <logdir>/snort_alert (config: "analyzers": {"snort": {"logDir": "<logdir>"}}).
-- Several packet threads: add  -z 2 --daq-var fanout_type=hash  (then "threads": 2: the sockets
-- are <logdir>/0_snort_alert and <logdir>/1_snort_alert). Unprivileged: add -u <user> -g <group>
-- and give the controller the same "owner"/"group" (or a "mode" that lets Snort write).
-- Reload the rules (and this file) without a restart: kill -HUP <snort pid>.
--
-- --daq afpacket matters: with the default pcap DAQ, Snort 3 delivers alerts in batches, late
-- enough that every held connection falls back to the default verdict.
--
-- To use your own snort.lua instead, copy the settings below into it.

-- The service network the rules' $HOME_NET stands for (the topologies' IPv4 network and the
-- IPv6 prefix of their dual-stack hosts).
HOME_NET = '[10.0.0.0/8,fd00::/8]'
EXTERNAL_NET = 'any'

ips =
{
    variables = { nets = { HOME_NET = HOME_NET, EXTERNAL_NET = EXTERNAL_NET } },
}

-- Log every rule a packet matches (Snort 3 logs only 3 events per packet by default, so a packet
-- matching FORWARD, MIGRATE and two more rules would lose alerts; Suricata logs up to 15).
-- order_events = 'priority': a packet's events are logged in rule priority order (1 first; rules
-- without one count as 0), so the no-match marker (snort-rules/no-match.rules, priority 255)
-- comes after every verdict alert of the same packet.
event_queue = { max_queue = 16, log = 16, order_events = 'priority' }

-- Snort stops evaluating a packet after this many fast-pattern matches (default 5), skipping the
-- rest, the content-less no-match marker included: a packet matching 6 rules lost its marker.
search_engine = { max_queue_events = 16 }

-- One Alertpkt datagram (65,864 bytes) per alert, sendto() <logdir>/snort_alert; no options.
-- Snort 3 keeps the quotes of msg ("MIGRATE"); the controller strips them.
alert_unixsock = { }
