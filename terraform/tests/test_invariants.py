"""The invariants of terraform/ that the hot path depends on, read from the HCL itself
(python-hcl2; no provider download is possible offline, so `terraform validate` cannot run).

Run: .services/venv/bin/python -m unittest discover -s terraform/tests -v
"""

import pathlib
import unittest

import hcl2

TERRAFORM = pathlib.Path(__file__).resolve().parent.parent


def one(value):
    """python-hcl2 wraps attributes and blocks in lists; unwrap a single one."""
    while isinstance(value, list):
        if len(value) != 1:
            raise AssertionError(f"expected one value, got {value!r}")
        value = value[0]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def load():
    """Every resource and variable of every .tf file: {(type, name): body}, {name: body}."""
    resources, variables = {}, {}
    for path in sorted(TERRAFORM.glob("*.tf")):
        with path.open() as f:
            document = hcl2.load(f)
        for block in document.get("resource", []):
            for kind, named in block.items():
                for name, body in named.items():
                    resources[(kind, name)] = body
        for block in document.get("variable", []):
            for name, body in block.items():
                variables[name] = body
    return resources, variables


class HotPathInvariants(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.resources, cls.variables = load()
        cls.hotpath = cls.resources[("google_container_node_pool", "hotpath")]
        cls.node = one(cls.hotpath["node_config"])
        cls.cluster = cls.resources[("google_container_cluster", "peregrine")]
        cls.sql = cls.resources[("google_sql_database_instance", "replica")]

    def test_hotpath_is_tainted_for_the_appliance_only(self):
        taint = one(self.node["taint"])
        self.assertEqual(
            (one(taint["key"]), one(taint["value"]), one(taint["effect"])),
            ("peregrine.io/hotpath", "true", "NO_SCHEDULE"),
        )
        self.assertEqual(one(self.node["labels"]).count("'peregrine.io/pool': 'hotpath'"), 1)

    def test_hotpath_nodes_are_placed_compactly_in_one_zone(self):
        self.assertEqual(one(one(self.hotpath["placement_policy"])["type"]), "COMPACT")
        self.assertEqual(self.hotpath["node_locations"], [["${var.hotpath_zone}"]])

    def test_hotpath_machine_family_is_compute_optimized(self):
        self.assertEqual(one(self.node["machine_type"]), "${var.hotpath_machine_type}")
        default = one(self.variables["hotpath_machine_type"]["default"])
        self.assertRegex(default, r"^c[34]d?-")
        condition = one(one(self.variables["hotpath_machine_type"]["validation"])["condition"])
        self.assertIn("^c[34]d?-", condition)
        self.assertTrue(one(one(self.node["gvnic"])["enabled"]))

    def test_kubelet_gives_whole_cores_on_one_numa_node(self):
        kubelet = one(self.node["kubelet_config"])
        self.assertEqual(one(kubelet["cpu_manager_policy"]), "static")
        topology = one(kubelet["topology_manager"])
        self.assertEqual(one(topology["policy"]), "single-numa-node")

    def test_hugepages_and_local_ssd_for_the_journal(self):
        linux = one(self.node["linux_node_config"])
        self.assertIn("hugepage_size_2m", one(linux["hugepages_config"]))
        self.assertIn("local_ssd_count", one(self.node["local_nvme_ssd_block_config"]))

    def test_hotpath_is_never_upgraded_automatically(self):
        management = one(self.hotpath["management"])
        self.assertIs(one(management["auto_upgrade"]), False)
        window = one(one(self.cluster["maintenance_policy"])["recurring_window"])
        self.assertEqual(one(window["recurrence"]), "${var.hotpath_maintenance_recurrence}")

    def test_cluster_is_private_with_workload_identity_and_dataplane_v2(self):
        private = one(self.cluster["private_cluster_config"])
        self.assertIs(one(private["enable_private_nodes"]), True)
        self.assertEqual(one(self.cluster["datapath_provider"]), "ADVANCED_DATAPATH")
        self.assertIn("svc.id.goog", one(one(self.cluster["workload_identity_config"])["workload_pool"]))
        self.assertIs(one(self.cluster["deletion_protection"]), True)

    def test_sql_is_private_ha_recoverable_and_protected(self):
        self.assertEqual(one(self.sql["database_version"]), "MYSQL_8_0")
        self.assertIs(one(self.sql["deletion_protection"]), True)
        settings = one(self.sql["settings"])
        self.assertIs(one(settings["deletion_protection_enabled"]), True)
        self.assertEqual(one(settings["availability_type"]), "REGIONAL")
        ip = one(settings["ip_configuration"])
        self.assertIs(one(ip["ipv4_enabled"]), False)
        self.assertIn("google_compute_network.vpc", one(ip["private_network"]))
        backup = one(settings["backup_configuration"])
        self.assertIs(one(backup["binary_log_enabled"]), True)
        flags = {one(f["name"]): one(f["value"]) for f in settings["database_flags"]}
        self.assertEqual(flags.get("cloudsql_iam_authentication"), "on")

    def test_quic_is_allowed_over_udp_from_known_clients_only(self):
        rule = self.resources[("google_compute_firewall", "quic")]
        allow = one(rule["allow"])
        self.assertEqual(one(allow["protocol"]), "udp")
        self.assertEqual(one(rule["source_ranges"]), "${var.quic_client_cidrs}")
        condition = one(one(self.variables["quic_client_cidrs"]["validation"])["condition"])
        self.assertIn('"0.0.0.0/0"', condition)

    def test_openbao_unseals_with_kms(self):
        self.assertIn("openbao-unseal", self._kms_keys())
        member = self.resources[("google_kms_crypto_key_iam_member", "openbao_unseal")]
        self.assertEqual(one(member["role"]), "roles/cloudkms.cryptoKeyEncrypterDecrypter")
        config = (TERRAFORM.parent / "deploy/k8s/base/openbao/openbao.hcl").read_text()
        self.assertRegex(config, r'seal "gcpckms"')

    @staticmethod
    def _kms_keys():
        with (TERRAFORM / "kms.tf").open() as f:
            document = hcl2.load(f)
        for block in document.get("locals", []):
            if "kms_keys" in block:
                return one(block["kms_keys"])
        raise AssertionError("kms.tf has no kms_keys")


if __name__ == "__main__":
    unittest.main()
