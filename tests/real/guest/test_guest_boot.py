"""The real Linux guest boots through novaext's driver and its agent
answers; a clean ACPI shutdown stops it."""

import libvirt

from realhost import guest


def test_guest_boots_with_agent_and_shuts_down_cleanly_in_guest(
        real_host, guest_image):
    ids = guest_image.upload(real_host)
    instance, agent, seconds = guest.spawn(real_host, ids)
    print(f'guest agent answered {seconds:.1f} s after spawn returned')

    assert agent.sh('cat /proc/cmdline').strip().endswith(
        guest.COMMAND_LINE)
    mounts = agent.sh('cat /proc/mounts')
    assert '/dev/vda / ext4 rw' in mounts
    agent.write_file('/root/hello', b'novaext\n')
    assert agent.read_file('/root/hello') == b'novaext\n'
    assert agent.sh('cat /root/hello') == 'novaext\n'
    code, _out, err = agent.run('/bin/false')
    assert code == 1, err

    real_host.driver.power_off(instance, timeout=120, retry_interval=5)

    assert real_host.domain(instance).state()[0] == libvirt.VIR_DOMAIN_SHUTOFF
    # The guest OS shut itself down on the ACPI request; Nova did not
    # have to destroy it.
    assert 'shutting down, reason=shutdown' in guest.domain_log(instance)
    real_host.destroy(instance)
